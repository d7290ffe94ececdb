"""A photo's copy of its owner's name and privacy (migration 0019): made
with the photo, and rewritten in the owner's own transaction where the two
share a database, so lists and the privacy rule never read `users`."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from storage import photos_repo, search_repo, social_repo
from tests.conftest import bearer, signup, upload_ready
from tests.sharded import insert_photo, pool_of_user, user_id

Client = TestClient[Any, Any]
_OWNER_ROW = (
    "SELECT owner_username, owner_display_name, owner_private FROM photos WHERE owner_id = $1 "
    "ORDER BY id"
)


async def _owner_rows(client: Client, owner: int) -> list[tuple[str, str, bool]]:
    rows = await pool_of_user(client.app, owner).fetch(_OWNER_ROW, owner)
    return [(r[0], r[1], r[2]) for r in rows]


async def test_owner_fields_follow_the_owner_at_once(client: Client) -> None:
    token = await signup(client, "ann")
    stranger = await signup(client, "stranger")
    await client.patch("/api/v1/me", json={"display_name": "Ann"}, headers=bearer(token))
    uploaded = await upload_ready(client, token, imaging.jpeg_bytes(32, 32))
    ann = await user_id(client.app, "ann")
    # Made without the fields (as an SQL writer would): the database fills them in.
    await insert_photo(client.app, ann, "direct")
    assert await _owner_rows(client, ann) == [("ann", "Ann", False)] * 2

    resp = await client.patch(
        "/api/v1/me", json={"display_name": "Ann B", "private": True}, headers=bearer(token)
    )
    assert resp.status == 200
    # Committed with the change: no job, no lag.
    assert await _owner_rows(client, ann) == [("ann", "Ann B", True)] * 2
    public = await (await client.get("/api/v1/photos", headers=bearer(stranger))).json()
    assert uploaded["id"] not in {p["id"] for p in public["items"]}
    own = await (await client.get("/api/v1/users/ann/photos", headers=bearer(token))).json()
    assert {p["owner"]["display_name"] for p in own["items"]} == {"Ann B"}
    assert len(own["items"]) == 2

    await client.patch("/api/v1/me", json={"private": False}, headers=bearer(token))
    assert await _owner_rows(client, ann) == [("ann", "Ann B", False)] * 2
    public = await (await client.get("/api/v1/photos", headers=bearer(stranger))).json()
    assert uploaded["id"] in {p["id"] for p in public["items"]}


async def test_followees_given_decide_as_the_follows_table(client: Client) -> None:
    """The privacy rule with the viewer's followees given (as a photos
    database apart from the users would run it) answers as the one that
    reads `follows`, and uses only what it is given."""
    owner = await signup(client, "closed")
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    tokens = {name: await signup(client, name) for name in ("fan", "nosy")}
    await client.put("/api/v1/users/closed/follow", headers=bearer(tokens["fan"]))
    await client.post("/api/v1/me/follow-requests/fan/approve", headers=bearer(owner))
    closed = await user_id(client.app, "closed")
    photo = await insert_photo(client.app, closed, "hidden", ["shut"])
    viewers = {name: await user_id(client.app, name) for name in ("closed", "fan", "nosy")}

    async def shown(viewer: int | None, followees: list[int] | None) -> list[set[int]]:
        async with pool_of_user(client.app, closed).acquire() as conn:
            tagged = await photos_repo.list_tagged(
                conn, viewer_id=viewer, tag="shut", before=None, limit=5, followees=followees
            )
            owned = await photos_repo.list_by_owner(
                conn, viewer_id=viewer, owner_id=closed, before=None, limit=5, followees=followees
            )
            one = await photos_repo.photo_for(conn, photo, viewer, followees=followees)
            found = await search_repo.visible_photos(conn, [photo], viewer, followees=followees)
        single = {one.id} if one else set()
        return [{p.id for p in tagged}, {p.id for p in owned}, single, {p.id for p in found}]

    expected = {"closed": True, "fan": True, "nosy": False}
    for name, viewer in viewers.items():
        async with pool_of_user(client.app, viewer).acquire() as conn:
            followees = await social_repo.followee_ids(conn, viewer)
        assert (closed in followees) is (name == "fan")
        read_here = await shown(viewer, None)
        assert read_here == await shown(viewer, followees), name
        assert read_here == [{photo} if expected[name] else set()] * 4, name
    # Only what is given counts: the fan without their followees sees nothing.
    assert await shown(viewers["fan"], []) == [set()] * 4
    assert await shown(None, []) == await shown(None, None) == [set()] * 4
