"""The webhook checks (tasks/webhooks.py): framing, signature, freshness, uniqueness."""

import json
import time

import pytest

from tasks.webhooks import (
    MAX_BODY_BYTES,
    DeliveryLog,
    WebhookRejected,
    alias_created,
    content_length,
    sign,
    verify,
)

SECRET = "s3cret"
EVENT = {
    "entity": "model_version_alias",
    "action": "created",
    "data": {"name": "m", "alias": "champion", "version": "3"},
}


def delivery(body=None, delivery_id="d1", timestamp=None, secret=SECRET, **override):
    """Headers and body of a correctly signed delivery (body: str or bytes)."""
    text = json.dumps(EVENT) if body is None else body
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    signed = text if isinstance(text, str) else text.decode("latin-1")
    headers = {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": sign(secret, delivery_id, timestamp, signed),
    } | override
    return headers, text.encode() if isinstance(text, str) else text


def test_an_authentic_fresh_delivery_is_read():
    headers, body = delivery()
    event = alias_created(verify(SECRET, headers, body))
    assert (event.model, event.alias, event.version, event.delivery_id) == (
        "m",
        "champion",
        "3",
        "d1",
    )
    assert alias_created({"entity": "model_version", "action": "created"}) is None


def test_a_sender_clock_slightly_ahead_is_accepted():
    headers, body = delivery(timestamp=str(int(time.time()) + 20))
    assert verify(SECRET, headers, body)["delivery_id"] == "d1"


BAD_DELIVERIES = {
    # name: (headers override / body, status, message)
    "wrong secret": (dict(secret="other"), 401, "signature does not match"),
    "tampered body": ("tamper", 401, "signature does not match"),
    "no headers": ("no-headers", 401, "missing"),
    "stale timestamp": (dict(seconds_from_now=-3600), 401, "old"),
    "future timestamp": (dict(seconds_from_now=3600), 401, "in the future"),
    "400-digit timestamp": (dict(timestamp="9" * 400), 400, "not Unix seconds"),
    "negative timestamp": (dict(timestamp="-5"), 400, "not Unix seconds"),
    "float timestamp": (dict(timestamp="1.5e9"), 400, "not Unix seconds"),
    "non-ASCII signature": ({"X-MLflow-Signature": "v1,é"}, 400, "signature is not printable"),
    "huge signature": ({"X-MLflow-Signature": "v" * 5000}, 400, "signature is not printable"),
    "non-ASCII delivery id": (dict(delivery_id="dé"), 400, "delivery id is not printable"),
    "non-UTF-8 body": (dict(body=b"\xff\xfe{}"), 400, "not UTF-8"),
    "not JSON": (dict(body="{nope"), 400, "not JSON"),
    "JSON list": (dict(body="[1, 2]"), 400, "JSON list, not an object"),
    "JSON string": (dict(body='"x"'), 400, "JSON str, not an object"),
    "deeply nested JSON": (dict(body="[" * 100_000 + "]" * 100_000), 400, "JSON"),
    "alias event with data a list": (
        dict(body=json.dumps(EVENT | {"data": [1]})),
        400,
        "'data' of an alias event",
    ),
    "alias event with version an object": (
        dict(body=json.dumps(EVENT | {"data": {"name": "m", "alias": "c", "version": {}}})),
        400,
        "string name, alias and version",
    ),
}


@pytest.mark.parametrize(("case", "status", "message"), BAD_DELIVERIES.values(), ids=BAD_DELIVERIES)
def test_a_bad_delivery_is_refused_with_its_status(case, status, message):
    if isinstance(case, dict) and "seconds_from_now" in case:  # the clock read when the test runs
        case = {"timestamp": str(int(time.time()) + case["seconds_from_now"])}
    if case == "no-headers":
        headers, body = {}, delivery()[1]
    elif case == "tamper":
        headers, body = delivery()
        body = body.replace(b'"3"', b'"4"')
    elif all(k.startswith("X-") for k in case):
        headers, body = delivery()
        headers = headers | case
    else:
        headers, body = delivery(**case)
    with pytest.raises(WebhookRejected, match=message) as raised:
        alias_created(verify(SECRET, headers, body))
    assert raised.value.status == status


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (None, 400),
        ("", 400),
        ("abc", 400),
        ("-1", 400),
        ("1e3", 400),
        ("9" * 400, 400),
        (str(MAX_BODY_BYTES + 1), 413),
        (str(10**10 - 1), 413),
    ],
)
def test_content_length_is_checked_before_reading(value, status):
    with pytest.raises(WebhookRejected) as raised:
        content_length(value)
    assert raised.value.status == status


def test_content_length_within_the_limit():
    assert content_length("0") == 0
    assert content_length(f" {MAX_BODY_BYTES} ") == MAX_BODY_BYTES


def test_a_delivery_id_is_accepted_once_within_the_window_and_memory_is_bounded():
    log = DeliveryLog(ttl_s=10, capacity=3)
    log.accept("a", now=0)
    with pytest.raises(WebhookRejected, match="already received") as raised:
        log.accept("a", now=5)
    assert raised.value.status == 409
    log.accept("b", now=6)
    log.accept("c", now=7)
    with pytest.raises(WebhookRejected, match="too many") as full:
        log.accept("d", now=8)  # full: refused, never evicted early (a replay could slip in)
    assert full.value.status == 429
    log.accept("d", now=10)  # "a" expired at 10
    assert len(log) == 3
    log.forget("d")
    log.accept("d", now=11)  # a failed delivery is processed again on retry
