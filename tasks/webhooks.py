"""MLflow registry webhooks: check a delivery's framing, HMAC signature, freshness and
uniqueness, and read what it announces. Pure logic; dualengine/webhook_receiver.py serves it.

Every refusal is a `WebhookRejected` with the HTTP status to answer: 400 for a malformed
request (bad Content-Length, non-UTF-8 body, non-ASCII signature, a timestamp that is not a
short number, JSON that is not an object), 401 for a missing or wrong signature or a
timestamp outside the window (older than `max_age_s`, or ahead by more than `max_skew_s`),
409 for a delivery id already accepted, 413 for a body over the size limit, 429 when the replay
log is full (nothing is evicted before it expires, so a replay can never slip through).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

SIGNATURE = "X-MLflow-Signature"
TIMESTAMP = "X-MLflow-Timestamp"
DELIVERY = "X-MLflow-Delivery-Id"

MAX_BODY_BYTES = 64 * 1024  # an alias event is a few hundred bytes
MAX_AGE_S = 300.0
MAX_SKEW_S = 30.0  # how far ahead of our clock a sender's may be
_DIGITS = re.compile(r"[0-9]{1,12}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces


class WebhookRejected(ValueError):
    """A delivery that must not be acted on, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AliasCreated:
    model: str
    alias: str
    version: str
    delivery_id: str


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """MLflow's scheme: "v1," + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))."""
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def content_length(value: str | None, limit: int = MAX_BODY_BYTES) -> int:
    """The body size a request announces, checked before a byte of it is read."""
    if value is None:
        raise WebhookRejected("Content-Length is required", 400)
    if not _DIGITS.fullmatch(value.strip()) or len(value.strip()) > 10:
        raise WebhookRejected(f"Content-Length {value[:40]!r} is not a byte count", 400)
    size = int(value.strip())
    if size > limit:
        raise WebhookRejected(f"body of {size} bytes is over the {limit}-byte limit", 413)
    return size


def verify(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    max_age_s: float = MAX_AGE_S,
    max_skew_s: float = MAX_SKEW_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The parsed payload of an authentic, fresh delivery; raises WebhookRejected otherwise.
    Cheap checks come first; the body is parsed only once the signature matches."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE.lower())
    timestamp = lower.get(TIMESTAMP.lower())
    delivery = lower.get(DELIVERY.lower())
    if not (signature and timestamp and delivery):
        raise WebhookRejected("missing signature, timestamp or delivery id headers", 401)
    if not _TOKEN.fullmatch(delivery):
        raise WebhookRejected("delivery id is not printable ASCII of at most 200 chars", 400)
    if not _TOKEN.fullmatch(signature):
        raise WebhookRejected("signature is not printable ASCII of at most 200 chars", 400)
    if not _DIGITS.fullmatch(timestamp):
        raise WebhookRejected(f"timestamp {timestamp[:40]!r} is not Unix seconds", 400)
    now = time.time() if now is None else now
    age = now - int(timestamp)
    if age > max_age_s:
        raise WebhookRejected(f"delivery is {age:.0f} s old (replay window {max_age_s:.0f} s)", 401)
    if -age > max_skew_s:
        raise WebhookRejected(
            f"delivery is {-age:.0f} s in the future (allowed skew {max_skew_s:.0f} s)", 401
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejected("body is not UTF-8", 400) from exc
    if not hmac.compare_digest(sign(secret, delivery, timestamp, text), signature):
        raise WebhookRejected("signature does not match", 401)
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON", 400) from exc
    if not isinstance(payload, dict):
        raise WebhookRejected(f"body is JSON {type(payload).__name__}, not an object", 400)
    return payload | {"delivery_id": delivery}


class DeliveryLog:
    """Delivery ids accepted within the replay window (bounded): a repeat is refused (409).
    Entries expire after the window plus the skew, when their timestamp is refused anyway."""

    def __init__(self, ttl_s: float = MAX_AGE_S + MAX_SKEW_S, capacity: int = 10_000) -> None:
        self.ttl_s, self.capacity = ttl_s, capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def accept(self, delivery_id: str, now: float | None = None) -> None:
        """Record a new id; raise WebhookRejected for a repeat or a full log."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now - self.ttl_s:
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                raise WebhookRejected(f"delivery {delivery_id[:60]!r} was already received", 409)
            if len(self._seen) >= self.capacity:
                raise WebhookRejected("too many deliveries in the replay window", 429)
            self._seen[delivery_id] = now

    def forget(self, delivery_id: str) -> None:
        """Drop an id whose handling failed, so the sender's retry is processed."""
        with self._lock:
            self._seen.pop(delivery_id, None)

    def __len__(self) -> int:
        return len(self._seen)


def alias_created(payload: dict[str, Any]) -> AliasCreated | None:
    """The alias assignment a `model_version_alias.created` delivery announces, else None."""
    if (payload.get("entity"), payload.get("action")) != ("model_version_alias", "created"):
        return None
    data = payload.get("data")
    if not isinstance(data, dict):
        raise WebhookRejected("'data' of an alias event is not an object", 400)
    fields = [data.get(k) for k in ("name", "alias", "version")]
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in fields):
        raise WebhookRejected("an alias event needs string name, alias and version", 400)
    name, alias, version = (str(v) for v in fields)
    return AliasCreated(name, alias, version, str(payload.get("delivery_id")))
