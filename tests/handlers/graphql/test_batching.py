"""No N+1: a feed page's owners, likedByMe and first comments (with their
authors) load through per-request DataLoaders, one batched statement per
kind per database, so the page costs the same few statements for 5 photos
as for 20."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.pagination import encode_cursor
from tests.conftest import signup, upload, wait_ready
from tests.handlers.graphql.gqlclient import Gql
from tests.statements import counting

Client = TestClient[Any, Any]

FEED = """
query Feed($first: Int!, $after: String) {
  feed(first: $first, after: $after) {
    edges { node {
      id likedByMe likeCount
      owner { username displayName followerCount }
      comments(first: 3) { edges { node { text user { username } } } }
    } }
  }
}"""
# Every photo's id is below this: a cursor that starts at the newest, as
# the first page does, but is never served from the first page's cache.
TOP = encode_cursor(2**62)
PHOTOS = 20
# The viewer's token, the feed, owners, comments, comment authors (per database).
SMALL = 10


async def test_a_feed_page_costs_the_same_statements_for_5_and_20_photos(client: Client) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    b = Gql(client, bob)
    made = []
    for i in range(PHOTOS):
        resp = await upload(client, alice, imaging.jpeg_bytes(32 + i, 24))
        assert resp.status == 201, await resp.text()
        made.append((await resp.json())["id"])
    await asyncio.gather(*(wait_ready(client, alice, pid) for pid in made))
    await b('mutation { follow(username: "alice") { username } }')
    for n, pid in enumerate(made):
        for c in range(3):
            await b(
                "mutation($id: ID!, $t: String!) { addComment(photoId: $id, text: $t) { id } }",
                id=pid,
                t=f"comment {c}",
            )
        if n % 2:
            await b("mutation($id: ID!) { likePhoto(photoId: $id) { liked } }", id=pid)

    # Once uncounted, so both counted pages find the same caches warm
    # (asyncpg's type introspection is left out by the counter itself).
    await b(FEED, first=20, after=TOP)
    counts = {}
    for first in (5, 20):
        async with counting(client.app[keys.DATABASES]) as statements:
            page = await b(FEED, first=first, after=TOP)
        edges = page["feed"]["edges"]
        assert len(edges) == first
        assert all(len(e["node"]["comments"]["edges"]) == 3 for e in edges)
        assert all(e["node"]["owner"]["username"] == "alice" for e in edges)
        liked = {made[n] for n in range(1, PHOTOS, 2)}
        assert all(e["node"]["likedByMe"] == (e["node"]["id"] in liked) for e in edges)
        counts[first] = list(statements.seen)
    assert len(counts[5]) == len(counts[20]), counts
    assert len(counts[20]) <= SMALL, counts[20]
