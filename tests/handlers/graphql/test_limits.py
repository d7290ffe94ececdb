"""Depth and cost limits, refused before anything runs with a clear error in
the `errors` array; the rate limiter counts an operation by its cost, and a
mutation as a write."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.graphql.limits import measure
from handlers.graphql.schema import SCHEMA
from picshare.config import GraphQLSettings
from picshare.internal_token import HEADER, InternalTokens
from tests.conftest import signup, upload_ready
from tests.handlers.graphql.conftest import ClientWith
from tests.handlers.graphql.gqlclient import Gql, codes

Client = TestClient[Any, Any]

MAX_DEPTH = GraphQLSettings().max_depth
MAX_COST = GraphQLSettings().max_cost
DEEP = """{ photos { edges { node { owner { photos { edges { node { owner {
  photos { edges { node { id } } } } } } } } } } } }"""
COSTLY = """query($p: Int, $n: Int) { photos(first: $p) { edges { node {
  comments(first: $n) { edges { node { text user { username } } } } } } } }"""


async def test_too_deep_and_too_costly_operations_are_refused_before_running(
    client: Client,
) -> None:
    anon = Gql(client)
    deep = await anon.errors(DEEP)
    assert codes(deep) == ["QUERY_TOO_DEEP"]
    assert f"at most {MAX_DEPTH}" in deep[0]["message"]
    costly = await anon.errors(COSTLY, p=100, n=100)
    assert codes(costly) == ["QUERY_TOO_COSTLY"]
    assert "first" in costly[0]["message"] and str(MAX_COST) in costly[0]["message"]
    # The same shape with small pages runs; introspection is on (and free).
    assert (await anon(COSTLY, p=100, n=3))["photos"]["edges"] == []
    schema = await anon("{ __schema { queryType { name } mutationType { name } } }")
    assert schema["__schema"]["queryType"]["name"] == "Query"


def test_cost_follows_first_and_fragments() -> None:
    from graphql import parse

    doc = parse(
        "query { feed(first: 10) { edges { node { ...P } } } } "
        "fragment P on Photo { id comments(first: 3) { edges { node { text } } } }"
    )
    operation = doc.definitions[0]
    fragments = {d.name.value: d for d in doc.definitions[1:]}  # type: ignore[attr-defined]
    depth, cost = measure(operation, fragments, {}, 20)  # type: ignore[arg-type]
    # feed, edges x10, node x10, id x10, comments x10, then 3 per photo: edges, node, text.
    assert depth == 7
    assert cost == 1 + 10 * (1 + 1 + 1 + 1 + 3 * (1 + 1 + 1))


async def test_the_rate_limiter_counts_cost_and_mutations(client_with: ClientWith) -> None:
    client = await client_with(ratelimit={"reads": "10/60s", "writes": "3/60s"})
    token = await signup(client, "rita")
    g = Gql(client, token)
    cheap = "{ me { username } }"
    assert (await g(cheap))["me"]["username"] == "rita"
    # About 2500 nodes: ten requests' worth, past the nine left of ten.
    refused = await g.errors(COSTLY, p=20, n=24)
    assert codes(refused) == ["RATE_LIMITED"]
    assert refused[0]["extensions"]["retryAfter"] >= 1
    # Mutations are writes: three allowed, the fourth refused (reads still left).
    other = await signup(client, "sam")
    ok = [
        await Gql(client, other)('mutation { updateProfile(bio: "x") { bio } }') for _ in range(3)
    ]
    assert len(ok) == 3
    fourth = await Gql(client, other).errors('mutation { updateProfile(bio: "y") { bio } }')
    assert codes(fourth) == ["RATE_LIMITED"]


async def test_the_limits_are_settings(client_with: ClientWith) -> None:
    client = await client_with(graphql={"max_depth": 4, "max_cost": 100})
    anon = Gql(client)
    # Four levels run, five do not.
    assert (await anon("{ photos { edges { node { id } } } }"))["photos"]["edges"] == []
    deep = await anon.errors("{ photos { edges { node { owner { username } } } } }")
    assert codes(deep) == ["QUERY_TOO_DEEP"]
    assert "at most 4" in deep[0]["message"]
    # 1 + 20 * 4 nodes run, 1 + 30 * 4 do not.
    page = "query($p: Int) { photos(first: $p) { edges { node { id caption } } } }"
    assert (await anon(page, p=20))["photos"]["edges"] == []
    costly = await anon.errors(page, p=30)
    assert codes(costly) == ["QUERY_TOO_COSTLY"]
    assert "at most 100" in costly[0]["message"]


async def test_a_query_the_fast_path_gives_up_is_charged_once(client_with: ClientWith) -> None:
    client = await client_with(ratelimit={"reads": "7/60s"})
    alice = await signup(client, "alice")
    await upload_ready(client, alice, imaging.jpeg_bytes(64, 48))
    sam = Gql(client, await signup(client, "sam"))
    # 1 + 100 * 7 nodes: three requests' worth. Compiled, started, and run
    # again by strawberry when `first: 0` fails.
    query = """{ photos(first: 100) { edges { node { id caption comments(first: 0) {
      edges { cursor } } } } } }"""
    assert SCHEMA.plans.get(query, None, 256) is not None
    for _ in range(2):  # six reads of seven
        assert codes(await sam.errors(query)) == ["BAD_USER_INPUT"]
    assert codes(await sam.errors(query)) == ["RATE_LIMITED"]


async def test_behind_the_gateway_the_service_charges_the_cost(
    client_with: ClientWith, redis_url: str
) -> None:
    """The gateway charged the request; the notifications service (where
    GraphQL lives) charges what the operation costs beyond it."""
    secret = "gateway-and-services-share-this-secret"
    monolith = await client_with()
    await signup(monolith, "rita")
    rita = await (await monolith.get("/api/v1/users/rita")).json()
    service = await client_with(
        server={"service": "notifications", "internal_secret": secret},
        ratelimit={"reads": "5/60s"},
        redis={"url": redis_url},
    )

    async def as_rita(query: str, **variables: Any) -> Any:
        token = InternalTokens(secret).sign(
            user_id=int(rita["id"]),
            auth_kind="bearer",
            request_id="r",
            method="POST",
            path="/graphql",
        )
        body = {"query": query, "variables": variables}
        resp = await service.post("/graphql", json=body, headers={HEADER: token})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    assert (await as_rita("{ me { username } }"))["data"]["me"]["username"] == "rita"
    # About 2500 nodes: ten requests' worth. The gateway counted one; the
    # nine more are past the five of the budget.
    refused = await as_rita(COSTLY, p=20, n=24)
    assert codes(refused["errors"]) == ["RATE_LIMITED"]
