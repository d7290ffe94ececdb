"""GraphQL queries and mutations over a real client (gql), against the same
services and rules as REST: what REST hides (a private account's photos, a
rejected photo) is NOT_FOUND here too; errors carry `extensions.code`."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.sessions import CSRF_HEADER
from tests.conftest import bearer, signup, upload_ready
from tests.handlers.graphql.gqlclient import Gql, codes
from tests.handlers.test_pages import browser_signup, csrf_of

Client = TestClient[Any, Any]

FEED = """
query Feed($first: Int, $after: String) {
  feed(first: $first, after: $after) {
    edges { cursor node { id caption likeCount likedByMe owner { username displayName }
      comments(first: 3) { edges { node { text user { username } } } pageInfo { hasNextPage } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_queries_and_mutations_share_rest_data_and_rules(client: Client) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    a, b, anon = Gql(client, alice), Gql(client, bob), Gql(client)
    photo = await upload_ready(client, alice, imaging.jpeg_bytes(64, 48))
    pid = photo["id"]

    got = await anon(
        "query($id: ID!) { photo(id: $id) { id owner { username } urls { thumb } } }", id=pid
    )
    assert got["photo"]["id"] == pid
    assert got["photo"]["owner"]["username"] == "alice"
    assert got["photo"]["urls"]["thumb"]

    # Mutations, then the same state seen over REST.
    liked = await b("mutation($id: ID!) { likePhoto(photoId: $id) { likeCount liked } }", id=pid)
    assert liked["likePhoto"] == {"likeCount": 1, "liked": True}
    rest = await (await client.get(f"/api/v1/photos/{pid}", headers=bearer(bob))).json()
    assert rest["like_count"] == 1 and rest["liked_by_me"] is True
    comment = await b(
        "mutation($id: ID!, $t: String!) { addComment(photoId: $id, text: $t) { id text } }",
        id=pid,
        t="nice",
    )
    cid = comment["addComment"]["id"]
    assert isinstance(cid, str) and cid.isdigit()
    followed = await b('mutation { follow(username: "alice") { username followedByMe } }')
    assert followed["follow"] == {"username": "alice", "followedByMe": True}

    feed = await b(FEED, first=10)
    edges = feed["feed"]["edges"]
    assert [e["node"]["id"] for e in edges] == [pid]
    node = edges[0]["node"]
    assert node["likedByMe"] is True and node["owner"]["username"] == "alice"
    assert [c["node"]["text"] for c in node["comments"]["edges"]] == ["nice"]
    assert feed["feed"]["pageInfo"]["hasNextPage"] is False

    profile = await b(
        '{ user(username: "alice") { photoCount followerCount followedByMe '
        "photos(first: 5) { edges { node { id } } } } }"
    )
    assert profile["user"]["photoCount"] == 1 and profile["user"]["followerCount"] == 1
    assert profile["user"]["followedByMe"] is True
    assert len(profile["user"]["photos"]["edges"]) == 1

    notes = await a("{ notifications(first: 10) { edges { node { kind actor { username } } } } }")
    kinds = {e["node"]["kind"] for e in notes["notifications"]["edges"]}
    assert {"like", "comment", "follow"} <= kinds

    me = await a(
        'mutation { updateProfile(bio: "hello", displayName: "Alice A") { bio displayName email } }'
    )
    assert me["updateProfile"] == {
        "bio": "hello",
        "displayName": "Alice A",
        "email": "alice@example.com",
    }
    assert (await anon("{ me { username } }"))["me"] is None

    found = await anon('{ search(q: "alice") { users { edges { node { username } } } } }')
    assert "alice" in [e["node"]["username"] for e in found["search"]["users"]["edges"]]

    # Errors: in the `errors` array, with a code, never a traceback.
    assert codes(await anon.errors(FEED)) == ["UNAUTHENTICATED"]
    # The photo's owner may delete a comment on it; then it is gone.
    deleted = await a("mutation($id: ID!) { deleteComment(commentId: $id) }", id=cid)
    assert deleted == {"deleteComment": cid}
    gone = await a.errors("mutation($id: ID!) { deleteComment(commentId: $id) }", id=cid)
    assert codes(gone) == ["NOT_FOUND"]
    assert codes(await b.errors("mutation($id: ID!) { deletePhoto(photoId: $id) }", id=pid)) == [
        "FORBIDDEN"
    ]
    assert codes(await anon.errors('{ photo(id: "123") { id } }')) == ["NOT_FOUND"]
    bad = await b.errors('mutation($id: ID!) { addComment(photoId: $id, text: "") { id } }', id=pid)
    assert codes(bad) == ["BAD_USER_INPUT"]
    assert "text" in bad[0]["message"]
    assert codes(await anon.errors("{ photos(first: 0) { edges { cursor } } }")) == [
        "BAD_USER_INPUT"
    ]
    assert codes(await anon.errors("{ nope }")) == ["GRAPHQL_VALIDATION_FAILED"]
    removed = await a("mutation($id: ID!) { deletePhoto(photoId: $id) }", id=pid)
    assert removed == {"deletePhoto": pid}


async def test_private_and_hidden_photos_are_as_invisible_as_over_rest(client: Client) -> None:
    carol = await signup(client, "carol")
    dave = await signup(client, "dave")
    photo = await upload_ready(client, carol, imaging.jpeg_bytes(64, 48))
    pid = photo["id"]
    c, d = Gql(client, carol), Gql(client, dave)
    await c("mutation { updateProfile(private: true) { private } }")
    assert (await client.get(f"/api/v1/photos/{pid}", headers=bearer(dave))).status == 404
    assert codes(await d.errors("query($id: ID!) { photo(id: $id) { id } }", id=pid)) == [
        "NOT_FOUND"
    ]
    assert codes(await d.errors('{ photos(user: "carol") { edges { cursor } } }')) == ["NOT_FOUND"]
    assert codes(
        await d.errors("mutation($id: ID!) { likePhoto(photoId: $id) { liked } }", id=pid)
    ) == ["NOT_FOUND"]
    public = await d("{ photos(first: 50) { edges { node { id } } } }")
    assert pid not in [e["node"]["id"] for e in public["photos"]["edges"]]
    # Its owner still sees it.
    assert (await c("query($id: ID!) { photo(id: $id) { id } }", id=pid))["photo"]["id"] == pid


async def test_cookie_sessions_need_the_csrf_header(client: Client) -> None:
    await browser_signup(client, "erin")
    csrf = await csrf_of(client, "/")
    query = {"query": "{ me { username } }"}
    refused = await client.post("/graphql", json=query)
    assert refused.status == 403
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    allowed = await client.post("/graphql", json=query, headers={CSRF_HEADER: csrf})
    assert (await allowed.json())["data"]["me"]["username"] == "erin"
    # GET queries need no CSRF header; the session cookie says who asks.
    got = await client.get("/graphql", params=query)
    assert (await got.json())["data"]["me"]["username"] == "erin"


TIP = """mutation($to: String!, $cents: Int!, $key: String!) {
  tip(to: $to, amountCents: $cents, idempotencyKey: $key) { id amountCents to balanceCents }
}"""


async def test_a_tip_moves_credit_once_per_key(client: Client) -> None:
    payer = await signup(client, "payer")
    await signup(client, "payee")
    topup = await client.post(
        "/api/v1/wallet/topup",
        json={"amount_cents": 1000},
        headers={**bearer(payer), "Idempotency-Key": "topup-1"},
    )
    assert topup.status == 201, await topup.text()
    g = Gql(client, payer)
    first = (await g(TIP, to="payee", cents=300, key="tip-1"))["tip"]
    assert first["amountCents"] == 300 and first["to"] == "payee"
    assert first["balanceCents"] == 700
    again = (await g(TIP, to="payee", cents=300, key="tip-1"))["tip"]
    assert again["id"] == first["id"]  # the same transfer, not a second one
    wallet = await (await client.get("/api/v1/wallet", headers=bearer(payer))).json()
    assert wallet["balance_cents"] == 700
    too_much = await g.errors(TIP, to="payee", cents=5000, key="tip-2")
    assert codes(too_much) == ["BAD_USER_INPUT"]  # more than the balance (409 over REST)
