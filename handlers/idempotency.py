"""The Idempotency-Key step (IETF httpapi draft), after authentication.

For a signed-in user's unsafe API request carrying `Idempotency-Key`, the
first request with a key runs and its answer is stored; a retry with the
same key and the same request gets that answer again (same status, body,
Content-Type and Location, plus `Idempotent-Replayed: true`) without running;
the same key for another request is 422; a retry while the first still runs
is 409 with Retry-After. Routes marked "required" answer 400 without a key.

Decisions (README: "Idempotency-Key"):
- Keys are per user. Anonymous requests have no scope to keep a key in (one
  shared scope would let a client replay another's answer), so their key is
  ignored; the routes that need one require sign-in anyway.
- The fingerprint is method, path with query, and the body's SHA-256. A
  streamed multipart upload is not read ahead of its handler: its fingerprint
  leaves the body out, so a key reused for another file replays the first.
- Answers with a 5xx status or an exception release the key (the client may
  retry); 2xx-4xx answers are stored. Only a plain `web.Response` with a body
  of at most `idempotency.max_body` bytes is stored; anything streamed or
  larger releases the key too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers import problems
from handlers.error_answers import error_answer
from picshare import keys
from picshare.errors import DomainError, invalid
from picshare.idempotency import HEADER, Answer, Claim, IdempotencyService, KeyInFlight
from picshare.routing import RouteInfo

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
# Hash big bodies off the event loop (hashlib releases the GIL on them).
_HASH_INLINE = 64 * 1024


async def run(request: web.Request, handler: Handler, info: RouteInfo) -> web.StreamResponse:
    """The handler of a route that takes a key (`info.idempotency` is not
    "none"), under this layer. The request layer (handlers/middlewares.py)
    calls it after authentication, and not behind the gateway, which has
    done this for the request already."""
    user = request.get(keys.USER)
    if user is None:
        return await handler(request)  # anonymous: no scope for a key (see above)
    key = request.headers.get(HEADER)
    if key is None:
        if info.idempotency == "required":
            raise invalid(HEADER, "is required for this request")
        return await handler(request)
    check_key(key)
    fingerprint = await fingerprint_of(request, with_body=not info.streamed_body)
    service = request.app[keys.IDEMPOTENCY]
    try:
        outcome = await service.claim(user.id, key, fingerprint)
    except KeyInFlight as exc:
        return problems.problem(
            409,
            exc.detail,
            field_errors=exc.errors,
            headers={"Retry-After": str(exc.retry_after)},
            instance=request.rel_url.raw_path,
        )
    if isinstance(outcome, Answer):
        return replay(outcome)
    return await _run_claimed(request, handler, service, outcome)


def check_key(key: str) -> None:
    """1-255 printable ASCII characters (the draft's key is an sf-string)."""
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise invalid(HEADER, f"must be 1-{MAX_KEY} printable ASCII characters")


async def fingerprint_of(request: web.Request, *, with_body: bool) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.rel_url.raw_path_qs.encode())
    if with_body:
        # Bounded by the app's client_max_size; aiohttp keeps it for the handler.
        body = await request.read()
        digest.update(b"\0")
        if len(body) > _HASH_INLINE:
            digest.update(await asyncio.to_thread(lambda: hashlib.sha256(body).digest()))
        else:
            digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def replay(answer: Answer) -> web.Response:
    headers = {REPLAYED: "true"}
    if answer.content_type:
        headers["Content-Type"] = answer.content_type
    if answer.location:
        headers["Location"] = answer.location
    return web.Response(status=answer.status, body=answer.body or None, headers=headers)


async def _run_claimed(
    request: web.Request, handler: Handler, service: IdempotencyService, claim: Claim
) -> web.StreamResponse:
    async with service.held(claim):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect is an answer
                await _complete(
                    service, claim, Answer(exc.status, None, exc.headers.get("Location"), b"")
                )
                raise
            if exc.status >= 500:
                await _release(service, claim)
                raise
            response = error_answer(request, exc)
        except DomainError as exc:
            if problems.status_of(exc) >= 500:
                await _release(service, claim)
                raise
            response = error_answer(request, exc)
        except BaseException:
            await _release(service, claim)
            raise
        answer = _storable(response, service.max_body)
        if answer is None:
            await _release(service, claim)
        else:
            await _complete(service, claim, answer)
        return response


def _storable(response: web.StreamResponse, max_body: int) -> Answer | None:
    if response.status >= 500 or response.prepared or not isinstance(response, web.Response):
        return None
    body = response.body
    if body is None:
        body = b""
    if not isinstance(body, bytes) or len(body) > max_body:
        return None
    content_type = response.headers.get("Content-Type") if body else None
    return Answer(response.status, content_type, response.headers.get("Location"), body)


async def _complete(service: IdempotencyService, claim: Claim, answer: Answer) -> None:
    # The request's effect is done: a failure to store its answer must not
    # turn it into an error. The claim then lapses with its lease.
    try:
        await asyncio.shield(service.complete(claim, answer))
    except Exception:
        log.warning("storing an idempotent answer failed", exc_info=True)


async def _release(service: IdempotencyService, claim: Claim) -> None:
    try:
        await asyncio.shield(service.release(claim))
    except Exception:
        log.warning("releasing an idempotency key failed", exc_info=True)
