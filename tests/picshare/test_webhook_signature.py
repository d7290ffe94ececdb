"""PicShare's signatures verify with the reference Standard Webhooks library."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from picshare import webhook_signature


def test_a_signed_delivery_verifies_with_the_reference_library() -> None:
    secret = webhook_signature.new_secret()
    body = b'{"type":"photo.liked","data":{"photo_id":"1"}}'
    headers = webhook_signature.headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "photo.liked",
        "data": {"photo_id": "1"},
    }


def test_another_secret_or_a_changed_body_does_not_verify() -> None:
    secret = webhook_signature.new_secret()
    body = b'{"a":1}'
    headers = webhook_signature.headers(secret, "msg_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_signature.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_a_secret_is_whsec_and_base64() -> None:
    secret = webhook_signature.new_secret()
    assert secret.startswith("whsec_")
    assert len(webhook_signature.secret_key(secret)) == webhook_signature.SECRET_BYTES
    for bad in ("abc", "whsec_!!!"):
        with pytest.raises(webhook_signature.BadSecret):
            webhook_signature.secret_key(bad)
