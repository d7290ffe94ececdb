"""Page forms' own idempotency keys: a double-clicked upload makes one photo.
(The wallet's forms send their key with the transfer instead: the ledger
keeps one transfer per key, handlers/pages_wallet.py.)

Browsers cannot send an Idempotency-Key header from a plain form, so such a
page renders a fresh random key in a hidden field, and the form's handler
claims it through the same service as the API layer
(picshare/idempotency.py), in a namespace of its own per form. Unlike the
API, a second submission never gets a 409: it waits for the first to finish
and is sent where the first one went (the form's answer is a 303).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.idempotency import check_key
from picshare import keys
from picshare.errors import Unprocessable
from picshare.idempotency import Answer, KeyReused

FIELD = "idempotency_key"
# How long a second submission waits for the first before answering 409.
WAIT_SECONDS = 15.0


def new_key() -> str:
    return secrets.token_urlsafe(24)


async def once(
    request: web.Request,
    *,
    user_id: int,
    form: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], Awaitable[str]],
) -> str:
    """Run `action` (which returns where to send the browser) once per key of
    form `form`; a repeat waits for the first and gets its location. Without a
    key (an old page, a script) the action simply runs."""
    if not key:
        return await action()
    check_key(key)
    service = request.app[keys.IDEMPOTENCY]
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()
    try:
        claim = await service.claim_or_wait(
            user_id, f"form:{form}:{key}", digest, wait=WAIT_SECONDS
        )
    except KeyReused:
        raise Unprocessable(
            "This form was already sent with other values; send it again.", field=FIELD
        ) from None
    if isinstance(claim, Answer):
        return claim.location or "/"
    try:
        async with service.held(claim):  # a slow upload must not lose its key
            location = await action()
    except BaseException:
        # Refused (shown with the form again) or failed: the key is free for
        # the corrected form.
        await service.release(claim)
        raise
    await service.complete(claim, Answer(303, None, location, b""))
    return location
