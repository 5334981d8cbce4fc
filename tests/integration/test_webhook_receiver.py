"""The real webhook receiver over HTTP (raw sockets, so any malformed request can be sent):
every malformed request gets a JSON 4xx, never a traceback; size and time limits hold before
the body is read; a delivery id is accepted once; the receiver stays up throughout."""

import json
import socket
import time

import pytest

from dualengine import endpoints
from tasks.webhooks import MAX_BODY_BYTES, sign

pytestmark = pytest.mark.integration

SECRET = "receiver-test-secret"


@pytest.fixture(scope="module")
def receiver(settings):
    from dualengine.settings import Settings
    from dualengine.webhook_receiver import start_receiver

    local = Settings(webhook_secret=SECRET)
    server = start_receiver(local, port=endpoints.free_port(), timeout_s=1.0)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def raw(port, data: bytes, wait_s: float = 30.0) -> tuple[int, dict]:
    """Send bytes, read the whole reply; (status, JSON body) (status 0: closed, no reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR) if not data.endswith(b"KEEP") else None
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    if not reply:
        return 0, {}
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"Traceback" not in reply
    return status, json.loads(body) if body.startswith(b"{") else {"raw": body[:200]}


def post(port, body: bytes, headers: dict[str, str], length: str | None = "auto") -> bytes:
    lines = [b"POST /mlflow HTTP/1.1", b"Host: 127.0.0.1"]
    if length == "auto":
        length = str(len(body))
    if length is not None:
        lines.append(f"Content-Length: {length}".encode())
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def signed(body: str, delivery_id: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sign(SECRET, delivery_id, ts, body),
    }


IGNORED = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "data": {"name": "someone-else", "alias": "champion", "version": "1"},
    }
)


def test_an_authentic_delivery_is_accepted_once(receiver):
    headers = signed(IGNORED, "once-1")
    assert raw(receiver, post(receiver, IGNORED.encode(), headers)) == (200, {"ignored": True})
    status, reply = raw(receiver, post(receiver, IGNORED.encode(), headers))
    assert status == 409 and "already received" in reply["error"]


def malformed_requests():
    good = IGNORED.encode()
    now = int(time.time())
    return {
        "no Content-Length": (post(0, good, signed(IGNORED, "m1"), length=None), 400),
        "Content-Length not a number": (post(0, good, signed(IGNORED, "m2"), length="ten"), 400),
        "400-digit Content-Length": (post(0, good, signed(IGNORED, "m3"), length="9" * 400), 400),
        "negative Content-Length": (post(0, good, signed(IGNORED, "m4"), length="-1"), 400),
        "Content-Length over the limit": (
            post(0, b"", signed(IGNORED, "m5"), length=str(MAX_BODY_BYTES + 1)),
            413,
        ),
        "chunked body": (
            post(0, b"0\r\n\r\n", signed(IGNORED, "m6") | {"Transfer-Encoding": "chunked"}),
            400,
        ),
        "body shorter than announced": (
            post(0, good[:10], signed(IGNORED, "m7"), length=str(len(good))),
            400,
        ),
        "non-UTF-8 body": (post(0, b"\xff\xfe\xfd", signed("x", "m8")), 400),
        "non-ASCII signature": (
            post(0, good, signed(IGNORED, "m9") | {"X-MLflow-Signature": "v1,ü"}),
            400,
        ),
        "400-digit timestamp": (
            post(0, good, signed(IGNORED, "m10") | {"X-MLflow-Timestamp": "9" * 400}),
            400,
        ),
        "future timestamp": (post(0, good, signed(IGNORED, "m11", now + 3600)), 401),
        "stale timestamp": (post(0, good, signed(IGNORED, "m12", now - 3600)), 401),
        "JSON list": (post(0, b"[1]", signed("[1]", "m13")), 400),
        "not JSON": (post(0, b"{x", signed("{x", "m14")), 400),
        "no signature headers": (post(0, good, {}), 401),
        "wrong signature": (
            post(0, good, signed(IGNORED, "m15") | {"X-MLflow-Signature": "v1,AAAA"}),
            401,
        ),
        "unknown path": (post(0, good, {}).replace(b"/mlflow", b"/other", 1), 404),
    }


@pytest.mark.parametrize("name", list(malformed_requests()))
def test_a_malformed_request_gets_a_json_error_and_the_receiver_stays_up(receiver, name):
    request, expected = malformed_requests()[name]
    status, reply = raw(receiver, request)
    assert status == expected, (name, reply)
    assert reply.get("error")
    fresh = signed(IGNORED, "after-" + name.replace(" ", "-"))
    assert raw(receiver, post(receiver, IGNORED.encode(), fresh))[0] == 200


def test_a_silent_client_is_cut_off_by_the_socket_timeout(receiver):
    """Headers announce a body that never comes: the server gives up after its 1 s timeout
    instead of holding the thread, and answers the next client."""
    started = time.monotonic()
    request = post(receiver, b"", signed(IGNORED, "slow"), length="100") + b"KEEP"
    with socket.create_connection(("127.0.0.1", receiver), timeout=10) as sock:
        sock.sendall(request[:-4])  # keep the connection open, send no body
        assert sock.recv(1024) == b""  # the server closed it
    assert time.monotonic() - started < 5
    fresh = signed(IGNORED, "after-slow")
    assert raw(receiver, post(receiver, IGNORED.encode(), fresh))[0] == 200
