"""MLflow registry webhooks: verify a delivery's HMAC signature and read what it announces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

SIGNATURE = "X-MLflow-Signature"
TIMESTAMP = "X-MLflow-Timestamp"
DELIVERY = "X-MLflow-Delivery-Id"


class WebhookRejected(ValueError):
    """A delivery that must not be acted on (bad or missing signature, stale, malformed)."""


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


def verify(
    secret: str, headers: dict[str, str], body: bytes, max_age_s: float = 300
) -> dict[str, Any]:
    """The parsed payload of an authentic, fresh delivery; raises WebhookRejected otherwise."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE.lower())
    timestamp = lower.get(TIMESTAMP.lower())
    delivery = lower.get(DELIVERY.lower())
    if not (signature and timestamp and delivery):
        raise WebhookRejected("missing signature, timestamp or delivery id headers")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError as exc:
        raise WebhookRejected(f"bad timestamp {timestamp!r}") from exc
    if age > max_age_s:
        raise WebhookRejected(f"delivery is {age:.0f} s old (replay window {max_age_s:.0f} s)")
    text = body.decode("utf-8")
    if not hmac.compare_digest(sign(secret, delivery, timestamp, text), signature):
        raise WebhookRejected("signature does not match")
    try:
        return json.loads(text) | {"delivery_id": delivery}
    except json.JSONDecodeError as exc:
        raise WebhookRejected("body is not JSON") from exc


def alias_created(payload: dict[str, Any]) -> AliasCreated | None:
    """The alias assignment a `model_version_alias.created` delivery announces, else None."""
    if (payload.get("entity"), payload.get("action")) != ("model_version_alias", "created"):
        return None
    data = payload.get("data") or {}
    return AliasCreated(
        str(data.get("name")),
        str(data.get("alias")),
        str(data.get("version")),
        str(payload.get("delivery_id")),
    )
