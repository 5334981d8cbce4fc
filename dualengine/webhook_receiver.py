"""The MLflow webhook receiver: verifies each delivery's signature and turns a `champion`
alias on the generator model into the Prefect event `dualengine.model.promoted`.

`dualengine serve` starts it on 127.0.0.1 (`DUALENGINE_WEBHOOK_PORT`, default 5056) and
registers the webhook with MLflow (event `model_version_alias.created`), so a person moving
`champion` in the MLflow UI starts the evaluation deployment just like the promote flow does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dualengine.credentials import generated_secret
from dualengine.settings import Settings
from tasks.webhooks import (
    MAX_BODY_BYTES,
    DeliveryLog,
    WebhookRejected,
    alias_created,
    content_length,
    verify,
)

PROMOTED = "dualengine.model.promoted"
WEBHOOK_NAME = "dualengine-champion"
SOCKET_TIMEOUT_S = 10.0


def webhook_secret(settings: Settings) -> str:
    """The configured secret, else one generated once in the state folder's secrets (0600)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return generated_secret(settings, "webhook-hmac-secret")[0]


def handle_delivery(
    secret: str,
    model_name: str,
    headers: dict[str, str],
    body: bytes,
    deliveries: DeliveryLog | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, reply) for one delivery; emits the Prefect event for a new champion.
    A delivery id is accepted once (`deliveries`); if emitting fails it is forgotten, so the
    sender's retry is processed."""
    try:
        payload = verify(secret, headers, body)
        change = alias_created(payload)
        if deliveries is not None:
            deliveries.accept(str(payload["delivery_id"]))
    except WebhookRejected as exc:
        return exc.status, {"error": str(exc)}
    if change is None or change.model != model_name or change.alias != "champion":
        return 200, {"ignored": True}
    try:
        from prefect.events import emit_event

        emit_event(
            event=PROMOTED,
            resource={"prefect.resource.id": f"mlflow.model.{change.model}"},
            payload={"name": change.model, "version": change.version, "alias": change.alias},
        )
    except Exception as exc:  # Prefect unreachable: let MLflow retry this delivery
        if deliveries is not None:
            deliveries.forget(change.delivery_id)
        return 503, {"error": f"could not emit {PROMOTED}: {type(exc).__name__}"}
    return 200, {"emitted": PROMOTED, "version": change.version}


def start_receiver(
    settings: Settings,
    port: int | None = None,
    timeout_s: float = SOCKET_TIMEOUT_S,
    max_body: int = MAX_BODY_BYTES,
) -> ThreadingHTTPServer:
    """Serve POST /mlflow on 127.0.0.1 in a daemon thread; returns the server.

    Before a byte of the body is read: the path, a Content-Length within `max_body`, and a
    socket timeout of `timeout_s` for every read (a slow or silent client is cut off)."""
    secret = webhook_secret(settings)
    model_name = settings.config().registry.model_name
    deliveries = DeliveryLog()

    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # StreamRequestHandler sets it on the socket before any read

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            try:
                self._post()
            except TimeoutError:
                self.close_connection = True
            except Exception as exc:  # never a traceback to the caller
                self._reply(500, {"error": f"internal error ({type(exc).__name__})"})

        def _post(self) -> None:
            if self.path.rstrip("/") != "/mlflow":
                self._reply(404, {"error": "unknown path"})
                return
            if self.headers.get("Transfer-Encoding"):
                self._reply(
                    400, {"error": "Transfer-Encoding is not accepted; send Content-Length"}
                )
                return
            try:
                length = content_length(self.headers.get("Content-Length"), max_body)
            except WebhookRejected as exc:
                self._reply(exc.status, {"error": str(exc)})
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self._reply(400, {"error": f"body ended after {len(body)} of {length} bytes"})
                return
            status, reply = handle_delivery(
                secret, model_name, dict(self.headers.items()), body, deliveries
            )
            self._reply(status, reply)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", port or settings.webhook_port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="mlflow-webhooks").start()
    return server


def register_webhook(settings: Settings, url: str) -> str:
    """Create or update the MLflow webhook pointing at the receiver; returns its id."""
    from mlflow import MlflowClient

    client = MlflowClient()
    secret = webhook_secret(settings)
    events = ["model_version_alias.created"]
    for hook in client.list_webhooks():
        if hook.name == WEBHOOK_NAME:
            client.update_webhook(hook.webhook_id, url=url, events=events, secret=secret)
            return hook.webhook_id
    return client.create_webhook(WEBHOOK_NAME, url, events, secret=secret).webhook_id
