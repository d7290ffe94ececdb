"""The compiled fast path (handlers/graphql/compiled.py, and the view's
short way for it) answers exactly what strawberry's view and executor answer:
each query here is sent twice over HTTP (POST and GET), once as it is
(compiled) and once with an `@include(if: true)` that the fast path leaves to
strawberry, and the two bodies must be equal, errors and partial data
included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.graphql.schema import SCHEMA
from tests.conftest import bearer, signup, upload_ready

Client = TestClient[Any, Any]

# `{D}` marks where the directive goes in the copy strawberry runs.
QUERIES = [
    # The feed with owners, likes and comments (a resolver per photo, batched).
    """query Feed($first: Int) { feed(first: $first){D} { edges { cursor node {
      id caption tags width height blurhash status likeCount commentCount likedByMe
      createdAt urls { original large medium thumb } owner { id username displayName }
      comments(first: 3) { edges { node { id text photoId createdAt user { username bio } } }
        pageInfo { hasNextPage endCursor } }
    } } pageInfo { hasNextPage endCursor } } }""",
    # Aliases, fragments (named and inline), __typename, fields asked twice.
    """{ me{D} { __typename username settings followerCount ... on Me { email } }
      newest: photos(first: 1) { edges { node { ... on Photo { id __typename } id
        owner { ...U } } } }
      photos(user: "alice") { pageInfo { hasNextPage } edges { node { caption } } } }
    fragment U on User { username displayName photoCount followedByMe private }""",
    # A profile with its photos and the viewer's relation; search; notifications.
    """{ user(username: "alice"){D} { id username bio followedByMe followingCount createdAt
        photos(first: 5) { edges { node { id likeCount } } } }
      search(q: "alice") { partial users { edges { node { username } } }
        tags { edges { node { name photoCount } } } photos { edges { node { id } } } }
      notifications(first: 5) { edges { node { kind actor { username } photoId text read } } } }""",
    # Errors: a missing photo (non-null, so data is null) ...
    """{ me{D} { username } photo(id: "123") { id } }""",
    # ... a bad `first` under a nullable parent, a user that does not exist.
    """query($n: Int) { photos(first: 2){D} { edges { node { id comments(first: $n) {
      edges { cursor } } } } } }""",
    """{ user(username: "nobody"){D} { username } }""",
]


async def _body(
    client: Client, token: str, query: str, variables: dict[str, Any], method: str = "POST"
) -> Any:
    if method == "POST":
        resp = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=bearer(token)
        )
    else:
        params = {"query": query, "variables": json.dumps(variables)}
        resp = await client.get("/graphql", params=params, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await resp.json()
    for error in body.get("errors", ()):
        error.pop("locations")  # the directive moves what follows it
    return body


@pytest.mark.parametrize("variables", [{"first": 2, "n": 0}, {"first": 20, "n": 3}])
async def test_compiled_queries_answer_as_strawberry_does(
    client: Client, variables: dict[str, Any]
) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    for i in range(3):
        photo = await upload_ready(client, alice, imaging.jpeg_bytes(64 + i, 48))
        pid = photo["id"]
        assert (await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(bob))).status == 200
        for text in ("one", "two", "three", "four")[: i + 2]:
            resp = await client.post(
                f"/api/v1/photos/{pid}/comments", json={"text": text}, headers=bearer(bob)
            )
            assert resp.status == 201
    assert (await client.put("/api/v1/users/alice/follow", headers=bearer(bob))).status == 200

    for template in QUERIES:
        fast = template.replace("{D}", "")
        slow = template.replace("{D}", " @include(if: true)")
        assert SCHEMA.plans.get(fast, None, 256) is not None, fast
        assert SCHEMA.plans.get(slow, None, 256) is None, slow
        used = {k: v for k, v in variables.items() if f"${k}" in fast}
        for token, method in ((bob, "POST"), (alice, "POST"), (bob, "GET")):
            compiled = await _body(client, token, fast, used, method)
            expected = await _body(client, token, slow, used, method)
            assert compiled == expected, fast
    # Some of them did fail, and some did not.
    answers = [await _body(client, bob, q.replace("{D}", ""), {"n": 0}) for q in QUERIES[3:]]
    assert [[e["extensions"]["code"] for e in a["errors"]] for a in answers] == [
        ["NOT_FOUND"],
        ["BAD_USER_INPUT"],
        ["NOT_FOUND"],
    ]
    # The error's null went up to the nearest nullable field (here the root).
    assert answers[1]["data"] is None
    assert answers[1]["errors"][0]["path"] == ["photos", "edges", 0, "node", "comments"]
    feed = await _body(client, bob, QUERIES[0].replace("{D}", ""), {"first": 20})
    assert "errors" not in feed and len(feed["data"]["feed"]["edges"]) == 3


def test_what_the_fast_path_leaves_to_strawberry() -> None:
    leaves = [
        'mutation { unfollow(username: "x") { username } }',
        "subscription { notifications { id } }",
        "{ __schema { queryType { name } } }",
        "{ me @skip(if: false) { username } }",
        "{ nope }",
        "{ me { username",
        "query A { me { username } } query B { me { id } }",
    ]
    for query in leaves:
        assert SCHEMA.plans.get(query, None, 256) is None, query
    both = "query A { me { username } } query B { me { id } }"
    assert SCHEMA.plans.get(both, "B", 256) is not None
