"""Records to JSON-ready dicts, as CONTRACT.md shapes them (IDs as strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from picshare import privacy
from picshare.media_urls import MediaUrls
from picshare.notifications import event_of
from picshare.pagination import Page
from picshare.social import Profile
from picshare.webhooks import msg_id as webhook_msg_id
from storage.cache.memo import IdentityMemo
from storage.records import (
    CommentRecord,
    DeliveryRecord,
    EndpointRecord,
    NotificationRecord,
    PhotoRecord,
    UserListEntry,
    UserRecord,
)

RENDITIONS = ("original", "large", "medium", "thumb")
# JSON made once per shared record or page (photo_json, photo_page).
_PHOTOS: IdentityMemo[PhotoRecord, tuple[MediaUrls, orjson.Fragment]] = IdentityMemo()
_PAGES: IdentityMemo[Page[PhotoRecord], tuple[MediaUrls, orjson.Fragment]] = IdentityMemo(
    max_entries=256
)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def public_user(user: UserRecord) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "private": user.private,
        "photo_count": user.photo_count,
        "follower_count": user.follower_count,
        "following_count": user.following_count,
        "created_at": iso(user.created_at),
    }


def private_user(user: UserRecord) -> dict[str, Any]:
    return {**public_user(user), "email": user.email, "settings": user.settings}


def photo(p: PhotoRecord, *, urls: MediaUrls) -> dict[str, Any]:
    signed = privacy.signed_media(p)
    keys = {
        "original": p.original_key,
        "large": p.large_key,
        "medium": p.medium_key,
        "thumb": p.thumb_key,
    }
    return {
        "id": str(p.id),
        "owner": {"username": p.owner_username, "display_name": p.owner_display_name},
        "caption": p.caption,
        "tags": p.tags,
        "width": p.width,
        "height": p.height,
        "blurhash": p.blurhash,
        "status": p.status,
        "like_count": p.like_count,
        "comment_count": p.comment_count,
        "liked_by_me": p.liked_by_me,
        "created_at": iso(p.created_at),
        "urls": {name: urls.url(keys[name], signed=signed) for name in RENDITIONS},
    }


def photo_json(
    p: PhotoRecord, *, urls: MediaUrls, shared: bool = True
) -> orjson.Fragment | dict[str, Any]:
    """`photo` for a JSON body. A public, ready photo reads the same for everyone
    who has not liked it, and the cache hands out one shared record per photo
    version (storage/cache/memo.py): its JSON is made once per record, here.
    `shared=False`: a record read for this request alone, not worth keeping."""
    if not shared or p.liked_by_me or privacy.signed_media(p):
        return photo(p, urls=urls)  # per viewer, or signed URLs that expire
    signer, fragment = _PHOTOS(p, lambda p: (urls, _fragment(photo(p, urls=urls))))
    if signer is not urls:  # another app's URLs (tests build many)
        fragment = _fragment(photo(p, urls=urls))
    return fragment


def photo_page(page: Page[PhotoRecord], *, urls: MediaUrls) -> orjson.Fragment:
    """A page of photos as a JSON body; made once per shared page (the
    signed-out front page, see PhotoService.list_public)."""

    def make(page: Page[PhotoRecord]) -> tuple[MediaUrls, orjson.Fragment]:
        items = [photo_json(p, urls=urls, shared=page.shared) for p in page.items]
        return urls, _fragment(list_body(page, items))

    if not page.shared:
        return make(page)[1]
    signer, fragment = _PAGES(page, make)
    return fragment if signer is urls else make(page)[1]


def _fragment(data: Any) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(data))


def profile(p: Profile) -> dict[str, Any]:
    rel = p.relationship
    return {
        **public_user(p.user),
        "followed_by_me": bool(rel and rel.following),
        "requested_by_me": bool(rel and rel.requested),
        "can_see_photos": p.can_see,
    }


def user_entry(e: UserListEntry) -> dict[str, Any]:
    return {
        "id": str(e.user_id),
        "username": e.username,
        "display_name": e.display_name,
        "private": e.private,
    }


def user_page(page: Page[UserListEntry]) -> dict[str, Any]:
    return list_body(page, [user_entry(e) for e in page.items])


def list_body(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    """A list's JSON body; `"partial": true` only when a shard was left out."""
    body: dict[str, Any] = {"items": items, "next_cursor": page.next_cursor}
    if page.partial:
        body["partial"] = True
    return body


def comment(c: CommentRecord) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "photo_id": str(c.photo_id),
        "text": c.text,
        "user": {"username": c.username, "display_name": c.display_name},
        "created_at": iso(c.created_at),
    }


def comment_page(page: Page[CommentRecord]) -> dict[str, Any]:
    return {"items": [comment(c) for c in page.items], "next_cursor": page.next_cursor}


def notification(n: NotificationRecord) -> dict[str, Any]:
    return event_of(n)


def webhook(e: EndpointRecord) -> dict[str, Any]:
    """An endpoint as its owner sees it: never its secret (shown once, when made)."""
    return {
        "id": str(e.id),
        "url": e.url,
        "events": e.events,
        "created_at": iso(e.created_at),
        "disabled": e.disabled_at is not None,
        "disabled_reason": e.disabled_reason,
    }


def webhook_delivery(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "webhook_id": webhook_msg_id(d.event_id, d.endpoint_id),
        "event_id": str(d.event_id),
        "event_type": d.event_type,
        "attempt": d.attempt,
        "status": d.status,
        "duration_ms": d.duration_ms,
        "error": d.error,
        "next_attempt_at": None if d.next_attempt_at is None else iso(d.next_attempt_at),
        "created_at": iso(d.created_at),
    }
