"""The MLflow webhook receiver: verifies each delivery's signature and turns a `champion`
alias on the generator model into the Prefect event `dualengine.model.promoted`.

`dualengine serve` starts it on 127.0.0.1 (`DUALENGINE_WEBHOOK_PORT`, default 5056) and
registers the webhook with MLflow (event `model_version_alias.created`), so a person moving
`champion` in the MLflow UI starts the evaluation deployment just like the promote flow does.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dualengine.settings import Settings
from tasks.webhooks import WebhookRejected, alias_created, verify

PROMOTED = "dualengine.model.promoted"
WEBHOOK_NAME = "dualengine-champion"


def webhook_secret(settings: Settings) -> str:
    """The configured secret, else one generated once and kept in the state folder."""
    if settings.webhook_secret:
        return settings.webhook_secret
    path = settings.state / "webhook.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def handle_delivery(
    secret: str, model_name: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, reply) for one delivery; emits the Prefect event for a new champion."""
    from prefect.events import emit_event

    try:
        payload = verify(secret, headers, body)
    except WebhookRejected as exc:
        return 401, {"error": str(exc)}
    change = alias_created(payload)
    if change is None or change.model != model_name or change.alias != "champion":
        return 200, {"ignored": True}
    emit_event(
        event=PROMOTED,
        resource={"prefect.resource.id": f"mlflow.model.{change.model}"},
        payload={"name": change.model, "version": change.version, "alias": change.alias},
    )
    return 200, {"emitted": PROMOTED, "version": change.version}


def start_receiver(settings: Settings, port: int | None = None) -> ThreadingHTTPServer:
    """Serve POST /mlflow on 127.0.0.1 in a daemon thread; returns the server."""
    secret = webhook_secret(settings)
    model_name = settings.params()["registry"]["model_name"]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") != "/mlflow":
                self._reply(404, {"error": "unknown path"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            status, reply = handle_delivery(
                secret, model_name, dict(self.headers.items()), self.rfile.read(length)
            )
            self._reply(status, reply)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", port or settings.webhook_port), Handler)
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
