"""The moderation service: the operator's own receiver of every new photo.

With `moderation.url` set, each `photo.uploaded` is delivered to it by the
`moderation` consumer, signed like every webhook (picshare/webhook_post.py;
the event id is the `webhook-id`, the same across retries). Its verdict comes
in the 2xx answer, `{"verdict": "approve" | "reject"}`, or later through
`POST /api/v1/moderation/{id}` with the moderation token; a 2xx without one
means "accepted, verdict later". Until an approval (and its renditions) the
photo stays `processing`, seen by its owner only.

Verdicts: the latest one wins. A later rejection takes an approved photo
down (`rejected`); a later approval puts a rejected one back. `photo.ready`
is written the first time a photo is shown, never again
(storage/photos_repo.py, `announce_ready`).

While the service cannot be reached (refused, 5xx, timeout, no verdict
readable from a 4xx) the delivery fails and the relay retries it with
backoff; once its attempts are spent it is dead-lettered (`run.py events
dead`, `run.py events retry`) and the photo still waits: nothing is shown
unmoderated. The URL is the operator's own, so loopback and private
addresses are allowed (user webhooks are the ones guarded against SSRF).
"""

from __future__ import annotations

import contextlib
import hmac
import logging

import aiohttp
import orjson

from picshare.config import ModerationSettings
from picshare.consumers import Consumer, consumer
from picshare.domain_events import DomainEvent
from picshare.errors import Forbidden, NotFound, Unauthenticated, invalid
from picshare.photos import PhotoService
from picshare.webhook_post import post_signed
from storage.records import ModerationState, PhotoStatus

log = logging.getLogger(__name__)

# The consumer's name (picshare/consumers.py CONSUMER_NAMES).
MODERATION = "moderation"
# Where the service reads a photo as uploaded (handlers/api_moderation.py).
UPLOAD_PATH = "/api/v1/moderation/{}/upload"

# What the service says, and what it means for the photo.
VERDICTS: dict[str, ModerationState] = {
    "approve": ModerationState.APPROVED,
    "reject": ModerationState.REJECTED,
}


class ModerationUnavailable(Exception):
    """The service did not take the photo: the relay tries again later."""


class ModerationService:
    __slots__ = ("_photos", "_session", "_settings")

    def __init__(self, *, settings: ModerationSettings, photos: PhotoService) -> None:
        self._settings = settings
        self._photos = photos
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<ModerationService url={self._settings.url or '(none)'}>"

    @property
    def enabled(self) -> bool:
        return bool(self._settings.url)

    def consumers(self) -> list[Consumer]:
        """The `moderation` consumer, when a service is configured (without
        one, photos are not held for it: no consumer, no queue bound)."""
        if not self.enabled:
            return []
        return [consumer(MODERATION, self._deliver)]

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- delivery -----------------------------------------------------------

    async def _deliver(self, event: DomainEvent) -> None:
        photo_id = int(event.data["photo_id"])
        # Idempotent by the photo's state: a redelivery after the verdict, a
        # verdict that came by the callback first, or a deleted photo: done.
        if await self._photos.moderation_state(photo_id) != ModerationState.PENDING:
            return
        # The event, and where the service fetches the photo as uploaded
        # (relative to the site: GET it with the moderation token).
        body = event.to_json()
        body["data"] = {**event.data, "upload_path": UPLOAD_PATH.format(photo_id)}
        attempt = await post_signed(
            self._client(),
            self._settings.url,
            self._settings.secret,
            str(event.id),
            orjson.dumps(body),
            self._settings.timeout,
        )
        if not attempt.ok:
            why = attempt.error or f"answered {attempt.status}"
            raise ModerationUnavailable(f"moderation of photo {photo_id}: {why}")
        verdict = verdict_in(attempt.body)
        if verdict is not None:
            with contextlib.suppress(NotFound):  # deleted while the service looked at it
                await self._photos.moderate(photo_id, verdict)
        # No verdict: accepted, the service calls back when it has decided.

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # A plain connector: the operator's service may be on loopback or
            # a private network. Each attempt has its own timeout (post_signed).
            self._session = aiohttp.ClientSession()
        return self._session

    # -- the callback ---------------------------------------------------------

    def check_token(self, authorization: str | None) -> None:
        """`Authorization: Bearer <moderation.token>`, compared in constant
        time: 401 when absent or not a bearer token, 403 when another token
        (always, when no token is configured)."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthenticated("send 'Authorization: Bearer <moderation token>'")
        expected = self._settings.token.encode()
        # As bytes: compare_digest refuses text that is not ASCII.
        if not expected or not hmac.compare_digest(given.strip().encode(), expected):
            raise Forbidden("not the moderation token")

    async def upload_of(self, photo_id: int) -> tuple[str, str]:
        """The blob key and type of a photo's upload (with its EXIF: for the
        moderation service only)."""
        found = await self._photos.upload_of(photo_id)
        if found is None:
            raise NotFound("no such photo")
        return found

    async def record(self, photo_id: int, verdict: object) -> PhotoStatus:
        """A verdict from the callback; the photo's status after it."""
        if not isinstance(verdict, str) or verdict not in VERDICTS:
            raise invalid("verdict", "must be 'approve' or 'reject'")
        return await self._photos.moderate(photo_id, VERDICTS[verdict])


def verdict_in(body: bytes) -> ModerationState | None:
    """The verdict of a 2xx answer, or None ("accepted, verdict later"). An
    answer that names something else is logged and read as no verdict yet."""
    try:
        value = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        value = None
    said = value.get("verdict") if isinstance(value, dict) else None
    if said is None:
        return None
    if isinstance(said, str) and said in VERDICTS:
        return VERDICTS[said]
    log.warning("moderation answered an unknown verdict %r: waiting for the callback", said)
    return None
