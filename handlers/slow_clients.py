"""Bounds on slow clients: the time to send a request's head, and its body.

aiohttp's server bounds neither. Its keep-alive timer (75 s) also ends a
connection stuck in a partial head, but a client dripping a header line now
and then holds its connection that long, and a body it never finishes for as
long as the handler waits; a few hundred such clients pile up sockets,
memory and handler tasks. (Behind nginx, nginx buffers heads and bodies with
its own timeouts; this is for a server that faces clients itself.)

`GuardedTCPSite` listens like aiohttp's `TCPSite`, but wraps the protocol
aiohttp makes for each connection in a `_GuardedConnection`, which owns two
deadlines:
- the head: from connecting, or from the first byte after an idle
  keep-alive, to the request's dispatch; past it the connection is closed;
- the body: from dispatch to the body's last byte; past it reading the body
  raises `BodyTimedOut`, a 408 problem naming `body`, and the connection
  closes after the answer. Uploads call `allow_slow_body` for their own,
  longer bound.
A request's dispatch and end are seen by wrapping the server's request
handler (`web.Server.request_handler`), so aiohttp's parser and protocol are
used as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from aiohttp import web
from yarl import URL

from picshare.errors import TimedOut

__all__ = ["BodyTimedOut", "GuardedTCPSite", "allow_slow_body"]

log = logging.getLogger(__name__)


class BodyTimedOut(TimedOut, TimeoutError):
    """The body did not arrive in time (408).

    A TimeoutError too: what aiohttp's lingering read after the answer expects
    from a body it gives up on (it then closes the connection quietly), and
    what readers with their own deadline (the upload form) already handle.
    """

    def __init__(self) -> None:
        super().__init__("the request body took too long to arrive", field="body")


def allow_slow_body(request: web.BaseRequest, seconds: float) -> None:
    """Give this request's body `seconds` from its head instead of the server's bound.

    For handlers that stream large bodies with their own deadline (uploads);
    a no-op where no guard runs (the test client).
    """
    connection = request.get(_CONNECTION)
    if connection is not None:
        connection.set_body_deadline(request, seconds)


class GuardedTCPSite(web.BaseSite):
    """aiohttp's TCP site with head and body deadlines on every connection."""

    __slots__ = ("_body_timeout", "_guard", "_header_timeout", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        header_timeout: float,
        body_timeout: float,
        backlog: int = 128,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._guard: _Guard | None = None
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite refuses a runner not set up
        guard = self._guard = _Guard(server, self._header_timeout, self._body_timeout)
        self._server = await asyncio.get_running_loop().create_server(
            guard.connection,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            # Several `serve` processes on one port (--workers): the kernel
            # spreads new connections across their listening sockets.
            reuse_port=self._reuse_port or None,
        )

    async def drain(self, timeout: float) -> None:
        """Stop accepting; wait up to `timeout` for the requests in progress.

        Before the runner's cleanup: that closes every connection first, and
        aiohttp then drops whatever still arrives on it (aio-libs/aiohttp#2298),
        so an upload still streaming in would hang until cut off. WebSockets
        are not waited for: the app's on_shutdown closes them with 1001.
        """
        if self._server is not None:
            self._server.close()
        if self._guard is not None:
            await self._guard.wait_idle(timeout)


class _Guard:
    """One per server: makes the connections and sees every request's start and end."""

    __slots__ = (
        "_body_timeout",
        "_connections",
        "_handle",
        "_header_timeout",
        "_idle",
        "_in_flight",
        "_server",
    )

    def __init__(self, server: web.Server, header_timeout: float, body_timeout: float) -> None:
        self._server = server
        self._in_flight = 0  # requests being handled, WebSockets left out
        # Made only while a shutdown waits (`wait_idle`): setting and clearing
        # an event on every request would cost each request for a rare wait.
        self._idle: asyncio.Future[None] | None = None
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._connections: dict[web.RequestHandler, _GuardedConnection] = {}
        self._handle = server.request_handler
        # Each connection's protocol copies this when it is made, so it is
        # replaced before the site listens.
        server.request_handler = self._handle_request

    def connection(self) -> asyncio.Protocol:
        """The protocol factory for `create_server`."""
        return _GuardedConnection(self, self._server(), self._header_timeout, self._body_timeout)

    async def wait_idle(self, timeout: float) -> None:
        """Until no request is being handled, or `timeout` seconds (shutdown only)."""
        if not self._in_flight:
            return
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._idle), timeout)

    async def _handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        # One coroutine per request: every layer costs a frame on each of them.
        counted = request.headers.get("Upgrade", "").lower() != "websocket"
        if counted:
            self._in_flight += 1
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.head_received(request)
        timed_out = False
        try:
            response = await self._handle(request)
        finally:
            if connection is not None:
                timed_out = connection.request_done()
            if counted:
                self._in_flight -= 1
                idle = self._idle
                if not self._in_flight and idle is not None and not idle.done():
                    idle.set_result(None)
        if timed_out:
            response.force_close()  # the rest of the body will not be read
        return response


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind two deadlines."""

    __slots__ = (
        "_body_timeout",
        "_body_timer",
        "_guard",
        "_head_deadline",
        "_head_timer",
        "_header_timeout",
        "_in_request",
        "_inner",
        "_loop",
        "_request_started",
        "_timed_out",
    )

    def __init__(
        self, guard: _Guard, inner: web.RequestHandler, header_timeout: float, body_timeout: float
    ) -> None:
        self._guard = guard
        self._inner = inner
        self._loop = asyncio.get_running_loop()
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        # None while no head is awaited: in a request, or idle with no byte yet.
        self._head_deadline: float | None = None
        # One timer per connection, moved by `_check_head` rather than made
        # and cancelled per request.
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_request = False
        self._request_started = 0.0
        self._timed_out = False

    def __repr__(self) -> str:
        state = "request" if self._in_request else "head" if self._head_deadline else "idle"
        return f"<_GuardedConnection {state}>"

    # --- asyncio.Protocol: everything goes on to aiohttp's protocol ---------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard._connections[self._inner] = self
        self._inner.connection_made(transport)
        self._head_started()

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._head_deadline is None:
            self._head_started()  # the first byte of the next request
        self._inner.data_received(data)

    def eof_received(self) -> None:
        # aiohttp's protocol ignores it and returns None: the transport closes
        # its side once the peer's is shut.
        self._inner.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard._connections.pop(self._inner, None)
        self._head_deadline = None
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- the head -----------------------------------------------------------
    def _head_started(self) -> None:
        self._head_deadline = self._loop.time() + self._header_timeout
        if self._head_timer is None:
            self._head_timer = self._loop.call_at(self._head_deadline, self._check_head)

    def _check_head(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return  # the head arrived in time
        if self._loop.time() < deadline:
            # A later head started since this timer was set: wait for its deadline.
            self._head_timer = self._loop.call_at(deadline, self._check_head)
            return
        log.debug("closing a connection whose request head took over %s s", self._header_timeout)
        self._inner.force_close()

    # --- the request and its body -------------------------------------------
    def head_received(self, request: web.BaseRequest) -> None:
        self._head_deadline = None
        self._in_request = True
        self._request_started = self._loop.time()
        self._timed_out = False
        if not request.content.is_eof():
            request[_CONNECTION] = self
            self.set_body_deadline(request, self._body_timeout)

    def set_body_deadline(self, request: web.BaseRequest, seconds: float) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        # Measured from the head, wherever in the request this is called.
        self._body_timer = self._loop.call_at(
            self._request_started + seconds, self._body_expired, request
        )

    def _body_expired(self, request: web.BaseRequest) -> None:
        self._body_timer = None
        if not request.content.is_eof():
            self._timed_out = True
            request.content.set_exception(BodyTimedOut())

    def request_done(self) -> bool:
        """The handler returned; True if its body timed out."""
        self._in_request = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        return self._timed_out


_CONNECTION = web.RequestKey("slow_clients.connection", _GuardedConnection)
