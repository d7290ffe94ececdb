"""The follow graph and reads across two real shards (two PostgreSQL clusters):
a follow's two sides and their mirror job, lists whose users live on both
shards, the home feed, tag pages and search merged across shards, and pages
marked partial when a shard is stopped."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from storage import social_repo, users_repo
from storage.ids import shard_of
from storage.records import UserRecord
from storage.router import PRIMARY
from storage.shards import Shards
from tests.conftest import make_settings
from tests.servers import ROOT
from tests.shard_harness import ShardClusters
from tests.sharded import follows_settled, insert_photo, pool_of_user, wait_for

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

AiohttpClient = Any
Client = TestClient[Any, Any]
MakeApp = Callable[..., Awaitable[Client]]

FOLLOW_ROW = "SELECT id FROM follows WHERE follower_id = $1 AND followee_id = $2"
COUNTS = "SELECT follower_count, following_count FROM users WHERE id = $1"


@pytest.fixture
def make_app(
    tmp_path: Path, shard_dsns: list[str], media_pool: Any, aiohttp_client: AiohttpClient
) -> MakeApp:
    """An app (on a test client) sharded over the two clusters' databases; more
    than one may be made over the same databases (a restart)."""

    async def make(*, jobs: bool = True, feed: dict[str, Any] | None = None) -> Client:
        settings = make_settings(
            tmp_path / "data",
            "",
            database={
                "url": "",
                "shards": tuple(shard_dsns),
                "connect_timeout": 2.0,
                "shard_budget": 1.5,
            },
            jobs={"enabled": jobs},
            feed=feed or {},
        )
        client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
        return client

    return make


@pytest.fixture
async def client(make_app: MakeApp) -> Client:
    return await make_app()


@pytest.fixture
def app(client: Client) -> web.Application:
    running: web.Application = client.app
    return running


def name_on(shards: Shards, index: int, stem: str) -> str:
    """A username the router puts on physical shard `index`."""
    for n in itertools.count():
        name = f"{stem}{n}"
        if shards.index_of(shards.of_username(name)) == index:
            return name
    raise AssertionError("unreachable")


async def make_user(
    app: web.Application, index: int, stem: str, *, private: bool = False
) -> UserRecord:
    """A user on shard `index`, made where sign-up makes it (their logical
    shard's database, their id from that logical shard)."""
    shards = app[keys.DATABASES]
    name = name_on(shards, index, stem)
    async with shards.of_username(name).write() as conn:
        user_id = await conn.fetchval(
            "INSERT INTO users (id, username, email, password_hash, private) "
            "VALUES (picshare_next_id($1), $2, $3, 'x', $4) RETURNING id",
            shards.logical_for(name),
            name,
            f"{name}@example.com",
            private,
        )
        user = await users_repo.user_by_id(conn, int(user_id))
    assert user is not None and shards.index_of(shards.of_user(user.id)) == index
    return user


async def counts(app: web.Application, user_id: int) -> tuple[int, int]:
    """(follower_count, following_count), from the user's own shard."""
    row = await pool_of_user(app, user_id).fetchrow(COUNTS, user_id)
    assert row is not None
    return int(row["follower_count"]), int(row["following_count"])


async def rows_of(app: web.Application, follower: int, followee: int) -> list[int | None]:
    """The follow's row id on [the follower's shard, the followee's shard]."""
    return [
        await pool_of_user(app, user).fetchval(FOLLOW_ROW, follower, followee)
        for user in (follower, followee)
    ]


async def test_a_follow_across_shards_has_a_row_and_a_count_on_each_side(
    app: web.Application,
) -> None:
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    profile = await social.follow(nina.username, alice)
    # The answer already has the other side: applied right after the commit.
    assert profile.relationship is not None and profile.relationship.following
    assert profile.user.follower_count == 1
    mine, theirs = await rows_of(app, alice.id, nina.id)
    assert mine is not None and mine == theirs
    assert shard_of(mine) == shard_of(alice.id)  # the follower's logical shard
    assert await counts(app, alice.id) == (0, 1)
    assert await counts(app, nina.id) == (1, 0)
    # The notification lives with its recipient, on the followee's shard.
    told = await pool_of_user(app, nina.id).fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'follow'", nina.id
    )
    assert told == 1
    followers = await social.followers(nina.username, None, cursor=None, limit=10)
    following = await social.following(alice.username, None, cursor=None, limit=10)
    assert [e.username for e in followers.items] == [alice.username]
    assert [e.username for e in following.items] == [nina.username]
    assert followers.items[0].id == mine and not followers.partial

    profile = await social.unfollow(nina.username, alice)
    assert profile.relationship is not None and not profile.relationship.following
    assert profile.user.follower_count == 0
    assert await rows_of(app, alice.id, nina.id) == [None, None]
    assert await counts(app, alice.id) == (0, 0) and await counts(app, nina.id) == (0, 0)


async def test_the_mirror_job_catches_up_soon_after_the_commit(app: web.Application) -> None:
    """Without the head start (as after a crash in between), the job alone:
    woken at commit, it brings the other side within a moment."""
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    assert await social.record_change(alice.id, nina.id, social_repo.follow)
    app[keys.JOBS].wake()
    lag = await wait_for(lambda: follows_settled(app, alice.id, nina.id), what="the mirror")
    print(f"\nmirror lag, job woken at commit: {lag * 1000:.0f} ms")
    assert lag < 2.0
    assert await counts(app, nina.id) == (1, 0)


async def test_mirror_runs_out_of_order_or_repeated_converge(make_app: MakeApp) -> None:
    app = (await make_app(jobs=False)).app
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    for change in (social_repo.follow, social_repo.unfollow, social_repo.follow):
        assert await social.record_change(alice.id, nina.id, change)
    payloads = [
        dict(r["payload"])
        for r in await pool_of_user(app, alice.id).fetch(
            "SELECT payload FROM jobs WHERE kind = $1 ORDER BY id", social_repo.FOLLOW_MIRROR_JOB
        )
    ]
    assert len(payloads) == 3
    mirror = social.job_kinds()[social_repo.FOLLOW_MIRROR_JOB].run
    # Newest first, then all again: each reads the truth, nothing doubles.
    for payload in [*reversed(payloads), *payloads, payloads[0]]:
        await mirror(payload)
    mine, theirs = await rows_of(app, alice.id, nina.id)
    assert mine is not None and mine == theirs
    assert await counts(app, nina.id) == (1, 0)
    assert await social.record_change(alice.id, nina.id, social_repo.unfollow)
    for payload in payloads:  # the old follows' jobs, retried after the unfollow
        await mirror(payload)
    assert await rows_of(app, alice.id, nina.id) == [None, None]
    assert await counts(app, nina.id) == (0, 0) and await counts(app, alice.id) == (0, 0)


async def test_a_mirror_and_an_unfollow_of_one_follow_take_turns(make_app: MakeApp) -> None:
    """A follow's mirror job may still be queued when its follower unfollows.
    Had the mirror read the follow before the unfollow and copied it after,
    the followee's side would say "following" for good. So every change of a
    follow takes the pair's lock where it writes, and a mirror holds it on
    both databases from its read to its commit: here the test holds it, as a
    running mirror would, and each waits for the other."""
    app = (await make_app(jobs=False)).app
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    mirror = social.job_kinds()[social_repo.FOLLOW_MIRROR_JOB].run
    stale = social_repo.mirror_payload(alice.id, nina.id)
    await social.follow(nina.username, alice)

    async def waits_for_the_pair_lock(user_id: int, step: Awaitable[Any]) -> None:
        pool = pool_of_user(app, user_id)
        async with pool.acquire() as conn, conn.transaction():
            await social_repo.lock_pair(conn, alice.id, nina.id)
            task = asyncio.ensure_future(step)
            await asyncio.sleep(0.5)
            assert not task.done(), "went ahead while the pair's lock was held"
        await task

    # The unfollow's first write (the followee's side) waits for a mirror...
    await waits_for_the_pair_lock(nina.id, social.unfollow(nina.username, alice))
    assert await rows_of(app, alice.id, nina.id) == [None, None]
    # ...and a mirror waits for the lock on its origin (the follower's side).
    await waits_for_the_pair_lock(alice.id, mirror(stale))
    assert await rows_of(app, alice.id, nina.id) == [None, None]
    assert await counts(app, nina.id) == (0, 0)


async def test_a_follow_survives_a_crash_between_its_two_halves(make_app: MakeApp) -> None:
    # The first half commits (the follower's row and the job), then the
    # process stops before anything runs the job: no runner, no head start.
    first_client = await make_app(jobs=False)
    first = first_client.app
    alice = await make_user(first, 0, "alice")
    nina = await make_user(first, 1, "nina")
    assert await first[keys.SOCIAL].record_change(alice.id, nina.id, social_repo.follow)
    assert (await rows_of(first, alice.id, nina.id))[1] is None
    await first_client.close()
    # A new process on the same databases finishes the follow.
    second = (await make_app()).app
    await wait_for(lambda: follows_settled(second, alice.id, nina.id), what="the mirror")
    assert None not in await rows_of(second, alice.id, nina.id)
    assert await counts(second, nina.id) == (1, 0)


async def test_a_request_lives_on_the_target_shard_and_approval_mirrors_back(
    app: web.Application,
) -> None:
    social, photos = app[keys.SOCIAL], app[keys.PHOTOS]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina", private=True)
    hidden = await insert_photo(app, nina.id, "private")
    profile = await social.follow(nina.username, alice)
    assert profile.relationship is not None and profile.relationship.requested
    assert not profile.can_see
    requests = "SELECT count(*) FROM follow_requests WHERE requester_id = $1"
    assert await pool_of_user(app, nina.id).fetchval(requests, alice.id) == 1
    assert await pool_of_user(app, alice.id).fetchval(requests, alice.id) == 0
    asked = await social.requests(nina.id, cursor=None, limit=10)
    assert [e.username for e in asked.items] == [alice.username]

    await social.approve(nina, alice.username)
    assert await pool_of_user(app, nina.id).fetchval(requests, alice.id) == 0
    assert None not in await rows_of(app, alice.id, nina.id)
    assert await counts(app, alice.id) == (0, 1) and await counts(app, nina.id) == (1, 0)
    # The privacy rule, on the owner's shard, now shows alice the photos.
    page = await photos.list_by_user(
        username=nina.username, cursor=None, limit=10, viewer_id=alice.id
    )
    assert [p.id for p in page.items] == [hidden]
    feed = await photos.feed(viewer_id=alice.id, cursor=None, limit=10)
    assert [p.id for p in feed.items] == [hidden]
    assert (await social.profile(nina.username, alice.id)).can_see


@pytest.mark.parametrize("dense", [False, True])
async def test_feed_and_tag_pages_across_shards_while_photos_arrive(
    make_app: MakeApp, dense: bool
) -> None:
    # Both plans per shard: per-followee probes, and the newest-first scan.
    client = await make_app(feed={"dense_following": 1 if dense else 10_000})
    app = client.app
    social, photos = app[keys.SOCIAL], app[keys.PHOTOS]
    reader = await make_user(app, 0, "reader")
    owners = [await make_user(app, i % 2, f"poster{i}") for i in range(4)]
    stranger = await make_user(app, 1, "stranger")
    for owner in owners:
        await social.follow(owner.username, reader)
    everyone = [reader, *owners]
    before = {await insert_photo(app, everyone[i % 5].id, f"p{i}", ["sea"]) for i in range(40)}
    unfollowed = await insert_photo(app, stranger.id, "not followed", ["sea"])
    stop = asyncio.Event()

    async def keep_posting() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            await insert_photo(app, everyone[n % 5].id, "late", ["sea"])
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(keep_posting())
    try:
        seen: list[int] = []
        cursor = None
        while True:
            page = await photos.feed(viewer_id=reader.id, cursor=cursor, limit=6)
            assert not page.partial
            seen += [p.id for p in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert len(seen) == len(set(seen)) and seen == sorted(seen, reverse=True)
        assert before <= set(seen) and unfollowed not in seen

        for path in ("/api/v1/tags/sea/photos", "/api/v1/photos"):
            listed: list[int] = []
            query = "?limit=7"
            while True:
                resp = await client.get(path + query)
                assert resp.status == 200 and "PicShare-Partial" not in resp.headers
                body = await resp.json()
                assert "partial" not in body
                listed += [int(p["id"]) for p in body["items"]]
                if body["next_cursor"] is None:
                    break
                query = f"?limit=7&cursor={body['next_cursor']}"
            assert len(listed) == len(set(listed)) and listed == sorted(listed, reverse=True)
            assert before | {unfollowed} <= set(listed)
    finally:
        stop.set()
        await writer


async def test_search_merges_shards_and_sums_tag_counts(app: web.Application) -> None:
    names = []
    for index, count in ((0, 2), (1, 3)):
        owner = await make_user(app, index, "sunbather")
        names.append(owner.username)
        for n in range(count):
            await insert_photo(app, owner.id, f"golden sunset {n}")
        async with app[keys.DATABASES].physical[index].write() as conn:
            await conn.execute(
                "INSERT INTO tags (tag, photo_count) VALUES ('sunset', $1), ('sunny', 1)", count
            )
    # Counts written behind the events' back: a reindex brings them to the index.
    await app[keys.SEARCH_INDEX].reindex()
    found = await app[keys.SEARCH].search("sun", None, limit=10)
    assert found.tags == [("sunset", 5), ("sunny", 2)]
    assert sorted(u.username for u in found.users) == sorted(names)
    assert len(found.photos) == 5 and not found.partial
    assert {p.owner_id for p in found.photos} == {u.user_id for u in found.users}


async def test_a_stopped_shard_gives_partial_pages_not_errors(
    client: Client, shard_clusters: ShardClusters
) -> None:
    app = client.app
    social, photos = app[keys.SOCIAL], app[keys.PHOTOS]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    bob = await make_user(app, 0, "bob")
    await social.follow(nina.username, alice)
    await social.follow(bob.username, alice)
    here = await insert_photo(app, bob.id, "here", ["sea"])
    await insert_photo(app, nina.id, "there", ["sea"])
    # Alice follows someone on each shard: her list names users on both.
    await asyncio.to_thread(shard_clusters.clusters[1].stop)

    for path in ("/api/v1/photos", "/api/v1/tags/sea/photos", "/api/v1/search?q=sea"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.headers.get("PicShare-Partial") == "1", path
        body = await resp.json()
        assert body["partial"] is True, path
        if "items" in body:
            assert [int(p["id"]) for p in body["items"]] == [here], path
    following = await social.following(alice.username, None, cursor=None, limit=10)
    assert following.partial and [e.username for e in following.items] == [bob.username]
    feed = await photos.feed(viewer_id=alice.id, cursor=None, limit=10)
    assert feed.partial and [p.id for p in feed.items] == [here]

    # Back: the partial front page and feed page were not kept as whole ones.
    await asyncio.to_thread(shard_clusters.clusters[1].start)
    await wait_for(lambda: _answers(app, 1), what="the shard back")
    resp = await client.get("/api/v1/photos")
    body = await resp.json()
    assert "partial" not in body and len(body["items"]) == 2
    assert "PicShare-Partial" not in resp.headers
    feed = await photos.feed(viewer_id=alice.id, cursor=None, limit=10)
    assert not feed.partial and len(feed.items) == 2


async def _answers(app: web.Application, index: int) -> bool:
    try:
        async with app[keys.DATABASES].physical[index].read(PRIMARY) as conn:
            await conn.fetchval("SELECT 1")
    except Exception:
        return False
    return True


async def test_going_public_turns_requests_into_follows_on_both_sides(
    app: web.Application,
) -> None:
    """What the account's owner does on their shard (storage/social_repo.py,
    approve_all_requests, in the profile edit's transaction): a requester of
    another shard is approved by a job enqueued there, through both sides."""
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina", private=True)
    await social.follow(nina.username, alice)
    async with app[keys.DATABASES].of_user(nina.id).transaction() as conn:
        await conn.execute("UPDATE users SET private = false WHERE id = $1", nina.id)
        assert await social_repo.approve_all_requests(conn, nina.id) == []
    app[keys.JOBS].wake()
    await app[keys.CACHED_READS].users_changed(nina.id)

    async def approved() -> bool:
        return None not in await rows_of(app, alice.id, nina.id)

    await wait_for(approved, what="the approval")
    assert await follows_settled(app, alice.id, nina.id)
    profile = await social.profile(nina.username, alice.id)
    assert profile.relationship is not None and profile.relationship.following
    assert not profile.relationship.requested and profile.user.follower_count == 1
    assert await counts(app, alice.id) == (0, 1)


async def test_a_follow_survives_sigkill_between_its_two_halves(
    make_app: MakeApp, shard_dsns: list[str], tmp_path: Path
) -> None:
    """A real process (tests/follow_crash_child.py) follows across shards and is
    killed with SIGKILL after its first half committed, while its second waits
    on the followee's shard; a new process on the same databases finishes it."""
    maker = await make_app(jobs=False)
    alice = await make_user(maker.app, 0, "alice")
    nina = await make_user(maker.app, 1, "nina")
    await maker.close()
    first: asyncpg.Connection = await asyncpg.connect(shard_dsns[0])
    second: asyncpg.Connection = await asyncpg.connect(shard_dsns[1])
    # Activity is watched from outside the locking transaction: inside one,
    # pg_stat_activity is a snapshot taken once.
    watch: asyncpg.Connection = await asyncpg.connect(shard_dsns[1])
    held = second.transaction()
    await held.start()
    await second.execute("LOCK TABLE follows IN EXCLUSIVE MODE")
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.follow_crash_child",
            str(tmp_path / "child"),
            str(alice.id),
            nina.username,
            *shard_dsns,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        # The first half: the follower's row (and its job) committed.
        await wait_for(
            lambda: first.fetchval(FOLLOW_ROW, alice.id, nina.id), timeout=60, what="half one"
        )
        # The second half: the mirror's insert waiting for the lock we hold.
        await wait_for(
            lambda: watch.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO follows%'"
            ),
            what="half two waiting",
        )
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        log.close()
        await held.rollback()
    # Nothing of the second half survived the kill; the job did.
    await wait_for(lambda: _quiet(second, "INSERT INTO follows%"), what="the killed insert gone")
    assert await second.fetchval(FOLLOW_ROW, alice.id, nina.id) is None
    # (The follow's domain event has its own jobs: picshare/relay_inprocess.py.)
    assert (
        await first.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'queued' AND kind = $1",
            social_repo.FOLLOW_MIRROR_JOB,
        )
        == 1
    )
    for conn in (first, second, watch):
        await conn.close()

    restarted = (await make_app()).app
    await wait_for(lambda: follows_settled(restarted, alice.id, nina.id), what="the mirror")
    assert None not in await rows_of(restarted, alice.id, nina.id)
    assert await counts(restarted, alice.id) == (0, 1)
    assert await counts(restarted, nina.id) == (1, 0)
    told = await pool_of_user(restarted, nina.id).fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'follow'", nina.id
    )
    assert told == 1


async def _quiet(conn: asyncpg.Connection, query: str) -> bool:
    """No backend is running `query` (a pattern) any more."""
    busy = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state <> 'idle' "
        "AND pid <> pg_backend_pid()",
        query,
    )
    return bool(busy == 0)


async def test_an_unfollow_before_a_going_public_approval_leaves_no_follow(
    make_app: MakeApp,
) -> None:
    """Gone public (the approval of a requester of another shard queued as a
    job, not run yet), then unfollowed, which withdraws the request: the late
    job finds no request and leaves no follow anywhere."""
    app = (await make_app(jobs=False)).app
    social = app[keys.SOCIAL]
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina", private=True)
    await social.follow(nina.username, alice)
    async with app[keys.DATABASES].of_user(nina.id).transaction() as conn:
        await conn.execute("UPDATE users SET private = false WHERE id = $1", nina.id)
        assert await social_repo.approve_all_requests(conn, nina.id) == []
    profile = await social.unfollow(nina.username, alice)
    assert profile.relationship is not None and not profile.relationship.following
    assert not profile.relationship.requested
    payloads = [
        dict(r["payload"])
        for r in await pool_of_user(app, nina.id).fetch(
            "SELECT payload FROM jobs WHERE kind = $1", social_repo.FOLLOW_APPROVE_JOB
        )
    ]
    assert len(payloads) == 1
    approve = social.job_kinds()[social_repo.FOLLOW_APPROVE_JOB].run
    await approve(payloads[0])
    await approve(payloads[0])  # a repeat changes nothing either
    assert await rows_of(app, alice.id, nina.id) == [None, None]
    assert await counts(app, alice.id) == (0, 0) and await counts(app, nina.id) == (0, 0)


async def test_a_mirror_job_outlasts_a_long_outage(make_app: MakeApp) -> None:
    """Its job may be retried far more often than an ordinary one: the other
    shard may be down for hours."""
    app = (await make_app(jobs=False)).app
    alice = await make_user(app, 0, "alice")
    nina = await make_user(app, 1, "nina")
    assert await app[keys.SOCIAL].record_change(alice.id, nina.id, social_repo.follow)
    attempts = await pool_of_user(app, alice.id).fetchval(
        "SELECT max_attempts FROM jobs WHERE kind = $1", social_repo.FOLLOW_MIRROR_JOB
    )
    assert attempts == social_repo.MIRROR_ATTEMPTS > app[keys.SETTINGS].jobs.max_attempts * 100
