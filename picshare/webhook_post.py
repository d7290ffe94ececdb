"""One signed delivery attempt to a receiver: the POST that user webhooks and
the moderation service share. Which addresses a receiver may have is the
caller's session's business (user webhooks resolve through a guard that
refuses private addresses; the moderation URL is the operator's own)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from picshare import webhook_signature

# What a delivery log keeps of a receiver's answer.
EXCERPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None  # None: no answer (refused, unreachable, timed out)
    body: bytes  # the first EXCERPT_BYTES of the answer
    retry_after: float | None  # seconds, from Retry-After on 429/503
    error: str  # why there was no answer, or ""
    duration: float  # seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    timeout: float,
) -> Attempt:
    """POST `body` signed for this attempt; redirects are not followed (a
    redirect could lead anywhere) and count as a failed attempt."""
    headers = webhook_signature.headers(secret, msg_id, int(time.time()), body)
    started = time.monotonic()
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            excerpt = await resp.content.read(EXCERPT_BYTES)
            retry_after = (
                _seconds(resp.headers.get("Retry-After")) if resp.status in (429, 503) else None
            )
            return Attempt(resp.status, excerpt, retry_after, "", time.monotonic() - started)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Attempt(None, b"", None, reason[:300], time.monotonic() - started)


def _seconds(value: str | None) -> float | None:
    """Retry-After in delta-seconds (an HTTP date is read as absent)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None
