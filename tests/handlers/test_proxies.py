"""Trusted-proxy handling: forwarded headers count only from listed proxies."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from handlers.proxies import forwarded_middleware


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"remote": request.remote, "secure": request.secure})


async def _client(aiohttp_client: Any, trusted: tuple[str, ...]) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[forwarded_middleware(trusted)])
    app.router.add_get("/", _echo)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


HEADERS = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2", "X-Forwarded-Proto": "https"}


async def test_trusted_proxy_headers_are_believed(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, ("127.0.0.1", "10.0.0.0/8"))
    body = await (await client.get("/", headers=HEADERS)).json()
    assert body == {"remote": "203.0.113.9", "secure": True}


async def test_untrusted_peer_headers_are_ignored(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, ("192.0.2.1",))
    body = await (await client.get("/", headers=HEADERS)).json()
    assert body == {"remote": "127.0.0.1", "secure": False}
