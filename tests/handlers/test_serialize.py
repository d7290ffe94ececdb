"""photo_json: the JSON of a public photo, made once per shared record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson

from handlers.serialize import photo, photo_json, photo_page
from picshare.media_urls import MediaUrls
from picshare.pagination import Page
from storage.records import PhotoRecord, PhotoStatus

URLS = MediaUrls(prefix="/media", secret=b"k" * 32, ttl=3600)
PHOTO = PhotoRecord(
    id=7,
    owner_id=1,
    owner_username="ann",
    owner_display_name="Ann",
    owner_private=False,
    caption="hi",
    tags=["sea"],
    status=PhotoStatus.READY,
    mime="image/jpeg",
    width=10,
    height=10,
    bytes=100,
    blurhash=None,
    upload_key="u",
    original_key="o",
    large_key="l",
    medium_key="m",
    thumb_key="t",
    like_count=0,
    comment_count=0,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    liked_by_me=False,
)


def test_public_photo_json_is_made_once_and_reads_the_same() -> None:
    first = photo_json(PHOTO, urls=URLS)
    assert photo_json(PHOTO, urls=URLS) is first
    assert orjson.dumps(first) == orjson.dumps(photo(PHOTO, urls=URLS))


def test_per_viewer_and_signed_photos_are_made_each_time() -> None:
    for changed in (
        dataclasses.replace(PHOTO, liked_by_me=True),
        dataclasses.replace(PHOTO, owner_private=True),
        dataclasses.replace(PHOTO, status=PhotoStatus.PROCESSING),
    ):
        assert isinstance(photo_json(changed, urls=URLS), dict)


def test_another_signer_gets_its_own_json() -> None:
    other = MediaUrls(prefix="https://cdn.example", secret=b"k" * 32, ttl=3600)
    assert b"https://cdn.example/l" in orjson.dumps(photo_json(PHOTO, urls=other))


def test_only_shared_pages_are_kept() -> None:
    shared = Page([PHOTO], None, shared=True)
    assert photo_page(shared, urls=URLS) is photo_page(shared, urls=URLS)
    alone = Page([PHOTO], None)
    first = photo_page(alone, urls=URLS)
    assert photo_page(alone, urls=URLS) is not first  # made for one request, not kept
    assert orjson.dumps(first) == orjson.dumps(photo_page(shared, urls=URLS))
