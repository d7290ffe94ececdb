"""The upload page's own idempotency key: a double-clicked upload makes one photo.

Browsers cannot send an Idempotency-Key header from a plain form, so the
upload page renders a fresh random key in a hidden field, and the form's
handler claims it through the same service as the API layer
(picshare/idempotency.py), in a namespace of its own. Unlike the API, a
second submission never gets a 409: it waits for the first to finish and is
sent to the same photo (the form's answer is a 303 to it).
"""

from __future__ import annotations

import hashlib
import secrets

from aiohttp import web

from handlers.idempotency import check_key
from picshare import keys
from picshare.errors import Unprocessable
from picshare.idempotency import Answer, Claim, KeyReused
from picshare.staging import StagedUpload

FIELD = "idempotency_key"
_NAMESPACE = "form:upload:"
# How long a second submission waits for the first before answering 409.
WAIT_SECONDS = 15.0


def new_key() -> str:
    return secrets.token_urlsafe(24)


async def claim_upload(
    request: web.Request,
    *,
    user_id: int,
    key: str | None,
    staged: StagedUpload,
    caption: str,
    tags: str,
) -> Claim | Answer | None:
    """Our claim on the form's key, the first submission's answer, or None
    for a form without a key (an old page, a script): then nothing is kept.

    The whole file has been read by now, so unlike a streamed API upload the
    fingerprint covers it: the same form sent again with another photo is 422."""
    if not key:
        return None
    check_key(key)
    digest = hashlib.sha256(f"{staged.sha256}\0{caption}\0{tags}".encode()).hexdigest()
    try:
        return await request.app[keys.IDEMPOTENCY].claim_or_wait(
            user_id, _NAMESPACE + key, digest, wait=WAIT_SECONDS
        )
    except KeyReused:
        raise Unprocessable(
            "This form was already sent with another photo; choose the file again.",
            field="file",
        ) from None
