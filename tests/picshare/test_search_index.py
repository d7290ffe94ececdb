"""The search index (picshare/search_index.py) on real PostgreSQL: fed by
domain events (upload, ready, delete, an owner's privacy), idempotent by event
id, the privacy rule per viewer, prefix and fuzzy usernames and tags, a common
word newest first (through the recent window and through the GIN index), and
`run.py search reindex`'s resumable backfill. Sharded too
(`PICSHARE_TEST_SHARDS=2`): rows sit on the owner's shard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.domain_events import PHOTO_UPLOADED, DomainEvent
from picshare.search_index import SEARCH
from storage import search_repo
from storage.router import PRIMARY
from tests.conftest import bearer, signup, upload, wait_ready
from tests.harness import database_env
from tests.searching import photo_ids, search
from tests.servers import ROOT
from tests.sharded import insert_photo, pool_of_user, user_id, wait_for

Client = TestClient[Any, Any]


async def _index_row(client: Client, photo_id: int) -> Any:
    pool = client.app[keys.DATABASES].of_id(photo_id).primary.pool
    return await pool.fetchrow("SELECT * FROM search_photos WHERE id = $1", photo_id)


async def test_upload_ready_searchable_then_delete_gone(client: Client) -> None:
    owner = await signup(client, "lumen")
    resp = await upload(client, owner, imaging.jpeg_bytes(32, 32), caption="quokkas at dawn")
    pid = (await resp.json())["id"]
    await wait_ready(client, owner, pid)  # and indexed
    row = await _index_row(client, int(pid))
    assert row["status"] == "ready" and row["private"] is False
    assert photo_ids(await search(client, "quokka")) == [pid]
    assert photo_ids(await search(client, "dawn quok")) == [pid]  # every word, each a prefix
    pool = pool_of_user(client.app, int(pid))

    async def both_consumed() -> bool:
        done = await pool.fetch(
            "SELECT p.consumer FROM processed_events p JOIN outbox o ON o.id = p.event_id "
            "WHERE p.consumer = $1 AND o.data->>'photo_id' = $2",
            SEARCH,
            pid,
        )
        assert len(done) <= 2
        return len(done) == 2  # photo.uploaded and photo.ready, each once

    await wait_for(both_consumed, what="both photo events consumed once")

    assert (await client.delete(f"/api/v1/photos/{pid}", headers=bearer(owner))).status == 204
    # At once: the result re-checks the photo.
    assert photo_ids(await search(client, "quokka")) == []

    async def forgotten() -> bool:
        return await _index_row(client, int(pid)) is None

    await wait_for(forgotten, what="the deleted photo's index row gone")


async def test_events_again_or_out_of_order_leave_the_row_as_the_photo_is(
    client: Client,
) -> None:
    owner = await signup(client, "echo")
    oid = await user_id(client.app, "echo")
    pid = await insert_photo(client.app, oid, "repeated words")
    indexer = client.app[keys.SEARCH_INDEX].consumer()
    # A late photo.uploaded (the photo is ready by now), delivered twice.
    late = DomainEvent(
        10**15, PHOTO_UPLOADED, {"photo_id": str(pid), "owner_id": str(oid)}, datetime.now(UTC)
    )
    for _ in range(2):
        await indexer.handle(late)
    assert (await _index_row(client, pid))["status"] == "ready"
    count = await pool_of_user(client.app, oid).fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2",
        SEARCH,
        late.id,
    )
    assert count == 1
    assert photo_ids(await search(client, "repeated", owner)) == [str(pid)]


async def test_privacy_per_viewer_and_going_public(client: Client) -> None:
    owner = await signup(client, "veil")
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    resp = await upload(client, owner, imaging.jpeg_bytes(32, 32), caption="hiddenword")
    pid = (await resp.json())["id"]
    await wait_ready(client, owner, pid)
    assert (await _index_row(client, int(pid)))["private"] is True
    stranger = await signup(client, "passerby")
    friend = await signup(client, "confidant")
    await client.put("/api/v1/users/veil/follow", headers=bearer(friend))
    await client.post("/api/v1/me/follow-requests/confidant/approve", headers=bearer(owner))
    for token, sees in ((None, False), (stranger, False), (friend, True), (owner, True)):
        assert (pid in photo_ids(await search(client, "hiddenw", token))) is sees, token

    # Going public is an event (user.updated): the consumer rewrites the rows.
    await client.patch("/api/v1/me", json={"private": False}, headers=bearer(owner))

    async def public() -> bool:
        return (await _index_row(client, int(pid)))["private"] is False

    await wait_for(public, what="the index told of the owner going public")
    assert photo_ids(await search(client, "hiddenw")) == [pid]
    assert photo_ids(await search(client, "hiddenw", stranger)) == [pid]

    # Going private again: hidden at once (the result re-checks the owner),
    # and the index follows.
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    assert photo_ids(await search(client, "hiddenw", stranger)) == []

    async def private() -> bool:
        return (await _index_row(client, int(pid)))["private"] is True

    await wait_for(private, what="the index told of the owner going private")
    assert photo_ids(await search(client, "hiddenw")) == []
    assert photo_ids(await search(client, "hiddenw", friend)) == [pid]
    # An index row that says public (behind a change) shows nothing the
    # account's privacy hides: the rule runs again on the owner as it is.
    pool = client.app[keys.DATABASES].of_id(int(pid)).primary.pool
    await pool.execute("UPDATE search_photos SET private = false WHERE id = $1", int(pid))
    assert photo_ids(await search(client, "hiddenw", stranger)) == []
    assert photo_ids(await search(client, "hiddenw")) == []


async def test_prefix_and_fuzzy_usernames_and_tags(client: Client) -> None:
    await signup(client, "marigold")
    await signup(client, "marimba_player")
    await signup(client, "zebra")
    oid = await user_id(client.app, "zebra")
    for tags in (["sunflower"], ["sunflower"], ["sunset"], ["moonflower"]):
        await insert_photo(client.app, oid, "x", tags)
    async with client.app[keys.DATABASES].of_id(oid).write() as conn:
        await conn.execute(
            "INSERT INTO tags (tag, photo_count) VALUES ('sunflower', 2), ('sunset', 1), "
            "('moonflower', 1) ON CONFLICT (tag) DO UPDATE SET photo_count = EXCLUDED.photo_count"
        )
    # Counts written behind the events' back: a reindex brings them (and
    # every user) into the index.
    await client.app[keys.SEARCH_INDEX].reindex()
    users = [u["username"] for u in (await search(client, "mari"))["users"]]
    assert users[:2] == ["marigold", "marimba_player"]  # prefix
    misspelt = [u["username"] for u in (await search(client, "marigols"))["users"]]
    assert misspelt[:1] == ["marigold"]
    assert [u["username"] for u in (await search(client, "@zebar"))["users"]] == ["zebra"]
    assert [t["tag"] for t in (await search(client, "#sun"))["tags"]] == [
        "sunflower",
        "sunset",
    ]
    fuzzy = [t["tag"] for t in (await search(client, "sunflowr"))["tags"]]
    assert fuzzy[0] == "sunflower" and "moonflower" not in fuzzy[:1]
    exact_first = [t["tag"] for t in (await search(client, "sunset"))["tags"]]
    assert exact_first[0] == "sunset"


async def test_common_word_newest_first_in_both_plans(client: Client) -> None:
    await signup(client, "prolific")
    oid = await user_id(client.app, "prolific")
    older = [await insert_photo(client.app, oid, f"harbour view {n}") for n in range(4)]
    rare = await insert_photo(client.app, oid, "albatross over the harbour")
    newer = [await insert_photo(client.app, oid, f"harbour lights {n}") for n in range(14)]
    everything = sorted([*older, rare, *newer], reverse=True)
    found = photo_ids(await search(client, "harbour"))
    assert found == [str(i) for i in everything[:10]]  # equal rank: newest first
    # Through the repository: a window of the newest 3 rows holds too few
    # matches of the rare word, so the GIN index answers, with the same rows.
    async with client.app[keys.DATABASES].of_id(oid).read(PRIMARY) as conn:
        small = await search_repo.photos(
            conn, "albatross:*", viewer_id=None, limit=10, candidates=50, window=3
        )
        wide = await search_repo.photos(
            conn, "albatross:*", viewer_id=None, limit=10, candidates=50, window=5_000
        )
        common = await search_repo.photos(
            conn, "harbour:*", viewer_id=None, limit=5, candidates=5, window=8
        )
    assert [p.id for _, p in small] == [p.id for _, p in wide] == [rare]
    assert [p.id for _, p in common] == everything[:5]


async def test_reindex_fills_the_index_and_resumes(client: Client) -> None:
    await signup(client, "archivist")
    oid = await user_id(client.app, "archivist")
    ids = [await insert_photo(client.app, oid, f"vintage print {n}") for n in range(5)]
    pool = pool_of_user(client.app, oid)
    await pool.execute("DELETE FROM search_photos")  # photos from before the index
    assert photo_ids(await search(client, "vintage")) == []
    indexer = client.app[keys.SEARCH_INDEX]
    report = await indexer.reindex()
    assert report.photos >= 5 and not report.resumed
    assert photo_ids(await search(client, "vintage")) == [str(i) for i in sorted(ids, reverse=True)]

    # Interrupted after the second photo: the next run goes on from there.
    await pool.execute("DELETE FROM search_photos WHERE id > $1", ids[1])
    await pool.execute(
        "UPDATE search_progress SET after_id = $1, finished_at = NULL WHERE kind = 'photos'",
        ids[1],
    )
    resumed = await indexer.reindex()
    assert resumed.resumed and resumed.photos == 3
    assert len(photo_ids(await search(client, "vintage"))) == 5
    # A deleted photo's stale row is pruned by a pass.
    await pool.execute("DELETE FROM photos WHERE id = $1", ids[0])
    await pool.execute(
        "INSERT INTO search_photos (id, owner_id, private, status, tsv) "
        "VALUES ($1, $2, false, 'ready', to_tsvector('simple', 'vintage')) "
        "ON CONFLICT DO NOTHING",
        ids[0],
        oid,
    )
    await indexer.reindex(restart=True)
    assert await pool.fetchval("SELECT count(*) FROM search_photos WHERE id = $1", ids[0]) == 0


async def test_run_py_search_reindex(client: Client, database_url: str, tmp_path: Path) -> None:
    await signup(client, "curator")
    oid = await user_id(client.app, "curator")
    ids = [await insert_photo(client.app, oid, f"gallery wall {n}") for n in range(3)]
    await pool_of_user(client.app, oid).execute("DELETE FROM search_photos")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")}
    env = {**base, **database_env(database_url), "PICSHARE_SECRET_KEY": "test-secret-0123456789ab"}
    command = [sys.executable, str(ROOT / "run.py"), "search", "reindex"]
    command += ["--data-dir", str(tmp_path / "cli")]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 3 photos" in done.stdout
    assert "search" in done.stderr  # the progress bar, per database
    assert photo_ids(await search(client, "gallery")) == [str(i) for i in sorted(ids, reverse=True)]
