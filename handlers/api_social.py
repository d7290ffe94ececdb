"""REST: likes, comments, profiles, follows and follow requests."""

from __future__ import annotations

from aiohttp import web

from handlers.api_photos import limit_of, photo_id_of
from handlers.auth import require_user, viewer_id
from handlers.jsonio import json_response, read_json_object
from handlers.serialize import comment, comment_page, profile, user_page
from picshare import keys
from picshare.errors import NotFound
from storage.ids import parse_id


async def like(request: web.Request) -> web.Response:
    state = await request.app[keys.SOCIAL].like(photo_id_of(request), require_user(request))
    return json_response({"like_count": state.like_count, "liked": state.liked})


async def unlike(request: web.Request) -> web.Response:
    state = await request.app[keys.SOCIAL].unlike(photo_id_of(request), require_user(request))
    return json_response({"like_count": state.like_count, "liked": state.liked})


async def list_comments(request: web.Request) -> web.Response:
    page = await request.app[keys.SOCIAL].comments(
        photo_id_of(request),
        viewer_id(request),
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
    )
    return json_response(comment_page(page))


async def add_comment(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json_object(request)
    created = await request.app[keys.SOCIAL].add_comment(
        photo_id_of(request), user, body.get("text")
    )
    return json_response(comment(created), status=201)


async def delete_comment(request: web.Request) -> web.Response:
    user = require_user(request)
    comment_id = parse_id(request.match_info["id"])
    if comment_id is None:
        raise NotFound("no such comment")
    await request.app[keys.SOCIAL].delete_comment(comment_id, user.id)
    return web.Response(status=204)


async def get_profile(request: web.Request) -> web.Response:
    found = await request.app[keys.SOCIAL].profile(
        request.match_info["username"], viewer_id(request)
    )
    return json_response(profile(found))


async def follow(request: web.Request) -> web.Response:
    found = await request.app[keys.SOCIAL].follow(
        request.match_info["username"], require_user(request)
    )
    return json_response(profile(found))


async def unfollow(request: web.Request) -> web.Response:
    found = await request.app[keys.SOCIAL].unfollow(
        request.match_info["username"], require_user(request)
    )
    return json_response(profile(found))


async def followers(request: web.Request) -> web.Response:
    page = await request.app[keys.SOCIAL].followers(
        request.match_info["username"],
        viewer_id(request),
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
    )
    return json_response(user_page(page))


async def following(request: web.Request) -> web.Response:
    page = await request.app[keys.SOCIAL].following(
        request.match_info["username"],
        viewer_id(request),
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
    )
    return json_response(user_page(page))


async def follow_requests(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await request.app[keys.SOCIAL].requests(
        user.id, cursor=request.query.get("cursor"), limit=limit_of(request)
    )
    return json_response(user_page(page))


async def approve_request(request: web.Request) -> web.Response:
    await request.app[keys.SOCIAL].approve(require_user(request), request.match_info["username"])
    return web.Response(status=204)


async def decline_request(request: web.Request) -> web.Response:
    await request.app[keys.SOCIAL].decline(require_user(request), request.match_info["username"])
    return web.Response(status=204)
