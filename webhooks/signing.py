"""Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`, under
each live secret, sent as a space-separated list of `v1,<base64>`."""

import base64
import hashlib
import hmac
import secrets
import uuid

PREFIX = "whsec_"


def new_secret() -> str:
    """A 24-byte key in the spec's form, `whsec_` + base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_id(delivery_id: uuid.UUID) -> str:
    """Stable across every attempt of one delivery: the receiver's idempotency key."""
    return f"msg_{delivery_id.hex}"


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(live_secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers; during a rotation's overlap, one signature per live secret (newest first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in live_secrets),
        "content-type": "application/json",
    }
