"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the one
place that makes secrets and signs deliveries, for user webhooks and for the
moderation service alike.

A secret is `whsec_` + base64 of random bytes; the signature is
`v1,` + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}")).
Receivers verify it with any Standard Webhooks library (the tests use the
`standardwebhooks` package).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 24


class BadSecret(ValueError):
    """A secret that is not `whsec_` followed by base64."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_...` secret stands for."""
    if not secret.startswith(PREFIX):
        raise BadSecret("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise BadSecret("a webhook secret is whsec_ followed by base64") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt: `msg_id` stays the same
    across retries, `timestamp` is the attempt's own (seconds since the epoch)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
