"""`GET /ws`: a user's live notifications.

Authenticated by the session cookie (then the Origin must be this site or an
allowed one: a cross-site page must not open a socket with the user's
cookie), a bearer token, or `?token=` (browsers cannot set headers on a
WebSocket). `?since=<notification id>` first replays what was missed, from
the database. The client may send `{"type": "ping"}` and gets `{"type": "pong"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web

from picshare import keys
from picshare.errors import Forbidden, Unauthenticated, invalid
from picshare.notifications import event_of as notification
from storage.ids import parse_id
from storage.records import UserRecord
from ws.hub import Connection

log = logging.getLogger(__name__)
MAX_MESSAGE = 4096


async def websocket(request: web.Request) -> web.StreamResponse:
    user = await authenticate(request)
    since = request.query.get("since")
    after = parse_id(since) if since else 0
    if after is None:
        raise invalid("since", "must be a notification id")
    settings = request.app[keys.SETTINGS].ws
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)

    async def send(event: dict[str, object]) -> None:
        await ws.send_str(orjson.dumps(event).decode())

    async def close(code: int, reason: str) -> None:
        await ws.close(code=code, message=reason.encode())

    hub = request.app[keys.HUB]
    conn = Connection(user.id, send=send, close=close, limit=settings.send_queue)
    # Registered before the replay, sent after it: nothing published meanwhile
    # is lost, and the sender skips what the replay already sent.
    hub.add(conn)
    try:
        if after:
            missed = await request.app[keys.NOTIFICATIONS].since(
                user.id, after, settings.replay_limit
            )
            for item in missed:
                await send(notification(item))
            if missed:
                conn.skip_up_to = missed[-1].id
        conn.start()
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await _on_text(message.data, send)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        hub.discard(conn)
        await conn.close(ws.close_code or 1000, "")
    return ws


async def _on_text(data: str, send: Callable[[dict[str, object]], Awaitable[None]]) -> None:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if isinstance(message, dict) and message.get("type") == "ping":
        await send({"type": "pong"})


async def authenticate(request: web.Request) -> UserRecord:
    """Who opens this socket (also `/graphql`'s subscriptions): the signed-in
    user, or `?token=`; a cookie-authenticated socket from a foreign Origin is refused."""
    user: UserRecord | None = request.get(keys.USER)
    # Behind the gateway only its internal token names users (it resolved
    # `?token=` already): the query's token is not believed here.
    behind_gateway = keys.INTERNAL_TOKENS in request.app
    if user is None and "token" in request.query and not behind_gateway:
        user = await request.app[keys.USERS].authenticate(request.query["token"], "api")
        if user is None:
            raise Unauthenticated("the token is unknown, expired or revoked")
        return user
    if user is None:
        raise Unauthenticated("sign in, or pass ?token=")
    if request.get(keys.AUTH_KIND) == "session" and not _origin_allowed(request):
        raise Forbidden(
            "this page's origin may not open a socket with your session", field="Origin"
        )
    return user


def _origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser page (browsers always send Origin on WebSockets)
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[keys.SETTINGS].ws.allowed_origins
