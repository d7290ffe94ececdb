"""Who is asking, for handlers: the signed-in user or a 401."""

from __future__ import annotations

from aiohttp import web

from picshare import keys
from picshare.errors import Unauthenticated
from storage.records import UserRecord


def current_user(request: web.Request) -> UserRecord | None:
    return request.get(keys.USER)


def require_user(request: web.Request) -> UserRecord:
    user: UserRecord | None = request.get(keys.USER)
    if user is None:
        raise Unauthenticated("sign in first: send 'Authorization: Bearer <token>'")
    return user


def viewer_id(request: web.Request) -> int | None:
    user = request.get(keys.USER)
    return None if user is None else user.id
