"""`Subscription.notifications` over graphql-transport-ws: a subscriber on
one `run.py serve` process receives a like made over REST on another (the
hub fed by Redis, as `/ws`); cookie-authenticated sockets from a foreign
Origin are refused, as on `/ws`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from tests.handlers.test_pages import browser_signup
from tests.harness import database_env
from tests.servers import picshare_process
from tests.ws.test_processes import _ready_photo, _signup

SUBSCRIBE = "subscription { notifications { id kind actor { username } photoId text } }"


async def _subscribers(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("picshare_ws_connections "):
                return float(line.split()[1])
    return 0.0


async def test_a_subscriber_receives_a_like_made_over_rest_on_another_process(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {**database_env(database_url), "PICSHARE_REDIS_URL": redis_url}
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "one.log") as one,
        picshare_process(tmp_path / "data", env, tmp_path / "two.log") as two,
        aiohttp.ClientSession() as session,
    ):
        owner = await _signup(session, one.base, "gql_owner")
        fan = await _signup(session, two.base, "gql_fan")
        photo_id = await _ready_photo(session, one.base, owner)
        transport = WebsocketsTransport(
            url=one.base.replace("http://", "ws://") + "/graphql",
            headers={"Authorization": f"Bearer {owner}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as gql_session:
            received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def listen() -> None:
                async for result in gql_session.subscribe(gql(SUBSCRIBE)):
                    await received.put(result["notifications"])

            listener = asyncio.create_task(listen())
            try:
                async with asyncio.timeout(10):  # the subscription is in the hub
                    while await _subscribers(session, one.base) < 1:
                        await asyncio.sleep(0.05)
                async with session.put(
                    f"{two.base}/api/v1/photos/{photo_id}/like",
                    headers={"Authorization": f"Bearer {fan}"},
                ) as resp:
                    assert resp.status == 200
                async with asyncio.timeout(2.0):
                    event = await received.get()
            finally:
                listener.cancel()
    assert event["kind"] == "like"
    assert event["actor"]["username"] == "gql_fan"
    assert event["photoId"] == photo_id


@pytest.mark.parametrize(("origin", "status"), [("http://evil.example", 403), (None, 101)])
async def test_cookie_sockets_from_a_foreign_origin_are_refused(
    client: TestClient[Any, Any], origin: str | None, status: int
) -> None:
    await browser_signup(client, "wsuser")
    headers = {} if origin is None else {"Origin": origin}
    if status == 101:
        async with client.ws_connect(
            "/graphql", protocols=["graphql-transport-ws"], headers=headers
        ) as ws:
            assert ws.protocol == "graphql-transport-ws"
        return
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/graphql", protocols=["graphql-transport-ws"], headers=headers)
    assert refused.value.status == status


async def test_anonymous_sockets_are_refused(client: TestClient[Any, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    assert refused.value.status == 401
