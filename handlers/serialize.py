"""Records to JSON-ready dicts, as CONTRACT.md shapes them (IDs as strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from picshare.pagination import Page
from storage.records import PhotoRecord, UserRecord

RENDITIONS = ("original", "large", "medium", "thumb")


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


def media_url(prefix: str, key: str | None) -> str | None:
    return None if key is None else f"{prefix}/{key}"


def photo(p: PhotoRecord, *, media_prefix: str) -> dict[str, Any]:
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
        # Likes arrive with the social layer; until then nobody has liked anything.
        "liked_by_me": False,
        "created_at": iso(p.created_at),
        "urls": {name: media_url(media_prefix, keys[name]) for name in RENDITIONS},
    }


def photo_page(page: Page[PhotoRecord], *, media_prefix: str) -> dict[str, Any]:
    return {
        "items": [photo(p, media_prefix=media_prefix) for p in page.items],
        "next_cursor": page.next_cursor,
    }
