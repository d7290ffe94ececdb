"""Errors over graphql-transport-ws (gql's websockets transport) carry the
`extensions.code` queries' errors carry over HTTP, for subscriptions and for
queries and mutations sent on the socket; each operation on a socket is
authenticated and rate limited as a request of its own."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

import tests.imaging as imaging
from tests.conftest import bearer, signup, upload_ready
from tests.handlers.graphql.conftest import ClientWith
from tests.handlers.graphql.gqlclient import codes
from tests.handlers.test_pages import browser_signup

COSTLY = """query($p: Int, $n: Int) { photos(first: $p) { edges { node {
  comments(first: $n) { edges { node { text user { username } } } } } } } }"""
SUBSCRIBE = "subscription { notifications { id kind } }"


def _socket(client: TestClient[Any, Any], token: str) -> Client:
    url = str(client.make_url("/graphql")).replace("http://", "ws://")
    transport = WebsocketsTransport(
        url=url,
        headers={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    return Client(transport=transport, execute_timeout=10)


async def _errors(
    session: AsyncClientSession, query: str, **variables: Any
) -> list[dict[str, Any]]:
    """The errors of an operation sent on the socket, which must fail."""
    request = GraphQLRequest(query, variable_values=variables or None)
    try:
        if query.startswith("subscription"):
            async for result in session.subscribe(request):
                raise AssertionError(f"the subscription gave {result}")
        else:
            await session.execute(request)
    except TransportQueryError as exc:
        return list(exc.errors or [])
    raise AssertionError("the operation succeeded")


async def test_socket_errors_carry_their_codes(client_with: ClientWith) -> None:
    limited = await client_with(ratelimit={"reads": "6/60s", "writes": "10/60s"})
    alice = await signup(limited, "alice")
    bob = await signup(limited, "bob")
    photo = await upload_ready(limited, alice, imaging.jpeg_bytes(64, 48))
    async with _socket(limited, bob) as session:  # one read: the handshake
        missing = await _errors(session, '{ photo(id: "123") { id } }')
        assert codes(missing) == ["NOT_FOUND"]
        bad = await _errors(session, "{ photos(first: 0) { edges { cursor } } }")
        assert codes(bad) == ["BAD_USER_INPUT"]
        assert bad[0]["extensions"]["fields"][0]["field"] == "first"
        theirs = await _errors(
            session, "mutation($id: ID!) { deletePhoto(photoId: $id) }", id=photo["id"]
        )
        assert codes(theirs) == ["FORBIDDEN"]
        assert codes(await _errors(session, "subscription { nope }")) == [
            "GRAPHQL_VALIDATION_FAILED"
        ]
        # Four reads so far of six: ten requests' worth is refused, and then
        # even a subscription is (each operation counts, as a request would).
        costly = await _errors(session, COSTLY, p=20, n=24)
        assert codes(costly) == ["RATE_LIMITED"]
        assert costly[0]["extensions"]["retryAfter"] >= 1
        assert codes(await _errors(session, SUBSCRIBE)) == ["RATE_LIMITED"]


async def test_an_operation_after_signing_out_is_unauthenticated(
    client: TestClient[Any, Any],
) -> None:
    carol = await signup(client, "carol")
    async with _socket(client, carol) as session:
        me = await session.execute(GraphQLRequest("{ me { username } }"))
        assert me == {"me": {"username": "carol"}}
        out = await client.post("/api/v1/auth/logout", headers=bearer(carol))
        assert out.status in (200, 204)
        refused = await _errors(session, SUBSCRIBE)
        assert codes(refused) == ["UNAUTHENTICATED"]
        assert "sign in" in refused[0]["message"]
        assert codes(await _errors(session, "{ me { username } }")) == ["UNAUTHENTICATED"]


async def test_a_cookie_socket_runs_each_operation_as_its_session(
    client: TestClient[Any, Any],
) -> None:
    await browser_signup(client, "dora")
    async with client.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        for n in ("1", "2"):
            query = {"query": "{ me { username } }"}
            await ws.send_json({"id": n, "type": "subscribe", "payload": query})
            answer = await ws.receive_json(timeout=5)
            assert answer == {
                "id": n,
                "type": "next",
                "payload": {"data": {"me": {"username": "dora"}}},
            }
            assert (await ws.receive_json(timeout=5)) == {"id": n, "type": "complete"}
