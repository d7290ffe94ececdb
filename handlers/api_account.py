"""REST: sign-up, log-in, log-out, and the current user (`/api/v1/auth/*`, `/api/v1/me`)."""

from __future__ import annotations

from aiohttp import web

from handlers.auth import require_user
from handlers.jsonio import json_response, read_json_object
from handlers.ratelimit import limit_login
from handlers.serialize import private_user
from picshare import keys


async def signup(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    result = await request.app[keys.USERS].signup(
        username=body.get("username"),
        email=body.get("email"),
        password=body.get("password"),
        kind="api",
    )
    return json_response(
        {"user": private_user(result.user), "token": result.token},
        status=201,
        headers={"Location": f"/api/v1/users/{result.user.username}"},
    )


async def login(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    await limit_login(request, body.get("username"))
    result = await request.app[keys.USERS].login(
        username=body.get("username"), password=body.get("password"), kind="api"
    )
    return json_response({"user": private_user(result.user), "token": result.token})


async def logout(request: web.Request) -> web.Response:
    require_user(request)
    await request.app[keys.USERS].logout(request[keys.CREDENTIAL])
    response = web.Response(status=204)
    if request[keys.AUTH_KIND] == "session":
        response.del_cookie(request.app[keys.SETTINGS].auth.session_cookie, path="/")
    return response


async def get_me(request: web.Request) -> web.Response:
    return json_response(private_user(require_user(request)))


async def patch_me(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json_object(request)
    updated = await request.app[keys.USERS].update_profile(user.id, body)
    return json_response(private_user(updated))
