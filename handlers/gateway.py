"""The gateway's HTTP side: every route of the table, sent to its service.

The gateway's router is filled from the same route table as a service's
(handlers/routes.py), each route answered by `proxy_to(route.service)`, so
the middlewares ahead of it work as in the monolith: the request id, the
caller's identity (bearer token or session cookie, CSRF included), rate
limits and Idempotency-Key happen here, once. The service then gets:

- the request as it came (method, path, query, Host, cookies), minus
  hop-by-hop headers and any `PicShare-Internal-Token` the client sent;
- `X-Request-ID` (the gateway's), `X-Forwarded-For` / `-Proto`;
- an internal token (picshare/internal_token.py) naming the user, the
  request id, the method and the path.

Bodies stream both ways (an upload is never held whole): the request's
body goes on as it arrives, the answer is written back chunk by chunk. Two
exceptions: an Idempotency-Key request's answer (a small JSON body) is read
whole so the idempotency layer can keep it, and an answer of at most one
chunk (64 KiB, by its Content-Length) is read whole, so that its head and
body leave in one write instead of three. WebSockets (`/ws`,
GraphQL subscriptions) are joined frame by frame, both ways.

A service that refuses the connection is a 502 problem, one that does not
start answering within its timeout a 504; either counts against its circuit
breaker, which once open answers 503 with Retry-After without trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy

from handlers import problems
from handlers.jsonio import json_response
from handlers.ratelimit import set_headers
from picshare import keys
from picshare.gateway import Upstream
from picshare.health import answers
from picshare.idempotency import HEADER as IDEMPOTENCY_HEADER
from picshare.internal_token import HEADER as INTERNAL_HEADER
from picshare.metrics import CONTENT_TYPE_LATEST
from ws import handler as ws_handler

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHUNK = 64 * 1024
READY_TIMEOUT = 2.0  # seconds for each of the gateway's own readiness checks
# RFC 9110 7.6.1, plus what the gateway sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    INTERNAL_HEADER.lower(),
    # The gateway's own server answered `Expect: 100-continue` already; the
    # body then follows, and the service gets it without the handshake.
    "expect",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
}
# The client side of a proxied WebSocket makes its own handshake.
_WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "content-length",
    }
)


def proxy_to(service: str) -> Handler:
    async def proxy(request: web.Request) -> web.StreamResponse:
        upstream = request.app[keys.GATEWAY].upstreams[service]
        breaker = upstream.breaker
        if not breaker.allow():
            wait = breaker.retry_after()
            return problems.problem(
                503,
                f"The {service} service is failing; the gateway is not trying it for {wait} s.",
                headers={"Retry-After": str(wait)},
                instance=request.rel_url.raw_path,
            )
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _websocket(request, upstream)
        return await _http(request, upstream)

    proxy.__name__ = f"proxy_{service}"
    return proxy


def _headers(request: web.Request, user_id: int | None) -> CIMultiDict[str]:
    """What the service gets: the client's end-to-end headers, then the gateway's."""
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED
    )
    request_id = request[keys.REQUEST_ID]
    forwarded_for = request.headers.get("X-Forwarded-For")
    remote = request.remote or ""
    headers["X-Forwarded-For"] = f"{forwarded_for}, {remote}" if forwarded_for else remote
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Request-ID"] = request_id
    headers[INTERNAL_HEADER] = request.app[keys.GATEWAY].tokens.sign(
        user_id=user_id,
        auth_kind=request.get(keys.AUTH_KIND),
        request_id=request_id,
        method=request.method,
        path=request.rel_url.raw_path,
    )
    return headers


def _answer_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in upstream.items() if k.lower() not in _HOP_BY_HOP)


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def _http(request: web.Request, upstream: Upstream) -> web.StreamResponse:
    user = request.get(keys.USER)
    headers = _headers(request, user.id if user is not None else None)
    data: bytes | AsyncIterator[bytes] | None = None
    if request.body_exists:
        # A body the idempotency layer has read (to fingerprint it) is kept by
        # aiohttp; read() gives it back. Otherwise it streams as it arrives.
        data = await request.read() if request.content.is_eof() else _body(request)
    # The idempotency layer keeps only a whole answer: read this one whole.
    keep = user is not None and IDEMPOTENCY_HEADER in request.headers
    keep = keep and request[keys.ROUTE].idempotency != "none"
    url = f"{upstream.url}{request.rel_url.raw_path_qs}"
    gateway = request.app[keys.GATEWAY]
    try:
        async with gateway.client.request(
            request.method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=upstream.timeout,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as answer:
            upstream.breaker.succeeded()
            out_headers = _answer_headers(answer.headers)
            decision = request.get(keys.RATELIMIT)
            if decision is not None:
                set_headers(out_headers, decision)
            small = (
                request.method != "HEAD"
                and answer.content_length is not None
                and answer.content_length <= CHUNK
            )
            if keep or small:
                # Whole: for the idempotency layer, or small enough to be one
                # chunk anyway (then head and body leave in one write).
                body = await answer.read()
                out_headers.pop("Content-Length", None)
                return web.Response(
                    status=answer.status, reason=answer.reason, body=body, headers=out_headers
                )
            response = web.StreamResponse(
                status=answer.status, reason=answer.reason, headers=out_headers
            )
            await response.prepare(request)
            return await _stream(request, upstream, answer, response)
    except aiohttp.ClientConnectorError as exc:
        upstream.breaker.failed()
        log.warning("%s unreachable: %s", upstream.name, exc)
        return _problem(request, 502, f"The {upstream.name} service is unreachable.")
    except TimeoutError:
        upstream.breaker.failed()
        log.warning("%s timed out", upstream.name)
        return _problem(request, 504, f"The {upstream.name} service did not answer in time.")
    except aiohttp.ClientError as exc:
        # Dropped before its answer's head (or while it was read whole).
        upstream.breaker.failed()
        log.warning("%s failed: %r", upstream.name, exc)
        return _problem(request, 502, f"The {upstream.name} service failed to answer.")


async def _stream(
    request: web.Request,
    upstream: Upstream,
    answer: aiohttp.ClientResponse,
    response: web.StreamResponse,
) -> web.StreamResponse:
    """The answer's body, chunk by chunk. Its head has left already: if the
    service breaks off now, the client's connection is closed, so it sees a
    cut answer (short of Content-Length, or no last chunk), not a whole one."""
    try:
        async for chunk in answer.content.iter_chunked(CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        upstream.breaker.failed()
        log.warning("%s broke off its answer: %r", upstream.name, exc)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _problem(request: web.Request, status: int, detail: str) -> web.StreamResponse:
    return problems.problem(
        status,
        detail,
        headers={"Retry-After": "1"} if status != 504 else None,
        instance=request.rel_url.raw_path,
    )


async def _websocket(request: web.Request, upstream: Upstream) -> web.StreamResponse:
    # Sockets take `?token=` too (browsers cannot set headers on them): the
    # gateway resolves it here, as the monolith's socket handlers do.
    user = await ws_handler.authenticate(request)
    headers = _headers(request, user.id)
    for name in list(headers):
        if name.lower() in _WS_HANDSHAKE:
            headers.popall(name, None)
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    url = f"{upstream.url}{request.rel_url.raw_path_qs}"
    gateway = request.app[keys.GATEWAY]
    try:
        inner = await gateway.client.ws_connect(
            url,
            headers=headers,
            protocols=protocols,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            max_msg_size=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        upstream.breaker.succeeded()  # it answered: a refusal is its answer
        return _problem(request, exc.status, exc.message or "The socket was refused.")
    except aiohttp.ClientConnectorError:
        upstream.breaker.failed()
        return _problem(request, 502, f"The {upstream.name} service is unreachable.")
    except TimeoutError:
        upstream.breaker.failed()
        return _problem(request, 504, f"The {upstream.name} service did not answer in time.")
    upstream.breaker.succeeded()
    outer = web.WebSocketResponse(
        protocols=(inner.protocol,) if inner.protocol else (),
        # The service pings the gateway; the gateway pings the client as the
        # service would, so a dead client is found here too.
        heartbeat=request.app[keys.SETTINGS].ws.heartbeat,
    )
    try:
        await outer.prepare(request)
        await _join(outer, inner)
    finally:
        await inner.close()
    return outer


async def _join(outer: web.WebSocketResponse, inner: aiohttp.ClientWebSocketResponse) -> None:
    """Frames both ways until one side closes; the other is closed with its code."""

    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await sink.send_bytes(message.data)
        code = source.close_code or 1000
        await sink.close(code=code)

    tasks = [asyncio.create_task(pump(inner, outer)), asyncio.create_task(pump(outer, inner))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task


async def readyz(request: web.Request) -> web.Response:
    """Ready when the gateway's own database answers (tokens, sessions,
    idempotency keys) and every upstream's own /readyz says so; each one's
    answer, and Redis's (its limits fall back to this process without it)."""
    upstreams = await request.app[keys.GATEWAY].readiness()
    checks = {f"upstream:{n}": v for n, v in upstreams.items()}
    own_database = answers(request.app[keys.DATABASES].catalog, READY_TIMEOUT)
    checks["database"] = await _own(own_database())
    redis = request.app[keys.REDIS]
    if redis is not None:
        checks["redis"] = await _own(redis.ping())
    ready = all(v == "ok" for k, v in checks.items() if k != "redis")
    breakers = {n: u.breaker.state for n, u in request.app[keys.GATEWAY].upstreams.items()}
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks, "breakers": breakers},
        status=200 if ready else 503,
    )


async def _own(check: Awaitable[object]) -> str:
    """The check's state: ok, or failing with its error type (READY_TIMEOUT each)."""
    try:
        await asyncio.wait_for(check, READY_TIMEOUT)
    except Exception as exc:
        return f"failing: {type(exc).__name__}"
    return "ok"


async def metrics(request: web.Request) -> web.Response:
    """The gateway's own requests (its registry; the services have theirs)."""
    registry = request.app[keys.METRICS]
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
