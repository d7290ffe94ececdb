"""REST: photos (`/api/v1/photos`, `/api/v1/upload`, `/api/v1/users/{username}/photos`)."""

from __future__ import annotations

from aiohttp import web

from handlers.auth import require_user, viewer_id
from handlers.jsonio import json_response
from handlers.serialize import photo, photo_json, photo_page
from handlers.upload_form import receive_upload
from picshare import keys
from picshare.errors import NotFound
from picshare.media_urls import MediaUrls
from picshare.pagination import parse_limit
from picshare.staging import StagedUpload
from storage.ids import parse_id


def limit_of(request: web.Request) -> int:
    p = request.app[keys.SETTINGS].pagination
    return parse_limit(request.query.get("limit"), default=p.default_limit, maximum=p.max_limit)


def media_urls(request: web.Request) -> MediaUrls:
    return request.app[keys.MEDIA_URLS]


def photo_id_of(request: web.Request) -> int:
    photo_id = parse_id(request.match_info["id"])
    if photo_id is None:
        raise NotFound("no such photo")
    return photo_id


async def list_photos(request: web.Request) -> web.Response:
    page = await request.app[keys.PHOTOS].browse(
        username=request.query.get("user"),
        tag=request.query.get("tag"),
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
        viewer_id=viewer_id(request),
    )
    return json_response(photo_page(page, urls=media_urls(request)))


async def user_photos(request: web.Request) -> web.Response:
    page = await request.app[keys.PHOTOS].list_by_user(
        username=request.match_info["username"],
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
        viewer_id=viewer_id(request),
    )
    return json_response(photo_page(page, urls=media_urls(request)))


async def get_photo(request: web.Request) -> web.Response:
    found = await request.app[keys.PHOTOS].get(photo_id_of(request), viewer_id(request))
    return json_response(photo_json(found, urls=media_urls(request)))


async def upload(request: web.Request) -> web.Response:
    user = require_user(request)
    photos = request.app[keys.PHOTOS]
    limit = request.app[keys.SETTINGS].uploads.max_bytes
    async with StagedUpload(request.app[keys.BLOBS].writer(), limit=limit) as staged:
        form = await receive_upload(request, staged)
        caption, tags = photos.check_text(form.caption, form.tags)
        created = await photos.create(owner_id=user.id, staged=staged, caption=caption, tags=tags)
    return json_response(
        photo(created, urls=media_urls(request)),
        status=201,
        headers={"Location": f"/api/v1/photos/{created.id}"},
    )


async def delete_photo(request: web.Request) -> web.Response:
    user = require_user(request)
    await request.app[keys.PHOTOS].delete(photo_id_of(request), user.id)
    return web.Response(status=204)


async def tag_photos(request: web.Request) -> web.Response:
    page = await request.app[keys.PHOTOS].list_tagged(
        tag=request.match_info["tag"],
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
        viewer_id=viewer_id(request),
    )
    return json_response(photo_page(page, urls=media_urls(request)))


async def feed(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await request.app[keys.PHOTOS].feed(
        viewer_id=user.id, cursor=request.query.get("cursor"), limit=limit_of(request)
    )
    return json_response(photo_page(page, urls=media_urls(request)))
