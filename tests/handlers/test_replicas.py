"""The storage router against a real primary and two streaming replicas
(tests/replication_harness.py): which database serves (Server-Timing), each
replica policy's spread, read-your-writes with replay paused, a dead and a
lagging replica skipped, and CAP: the primary stopped, reads stay up (stale),
writes answer 503, and come back without a restart."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload_ready
from tests.harness import TEST_SHARDS
from tests.imaging import jpeg_bytes
from tests.replication_harness import Replicated

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
_DB = re.compile(r'db;desc="([^"]+)"')


@pytest.fixture
async def make_client(
    tmp_path: Path,
    replicated: Replicated,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> MakeClient:
    async def make(**database: Any) -> Client:
        settings = make_settings(
            tmp_path / "data",
            replicated.primary_dsn,
            database={
                "replicas": replicated.replica_dsns,
                "replica_poll_interval": 0.05,
                "command_timeout": 5.0,
                "connect_timeout": 2.0,
                **database,
            },
        )
        client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
        return client

    return make


def served_by(resp: Any) -> list[str]:
    return _DB.findall(resp.headers.get("Server-Timing", ""))


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def node(client: Client, label: str) -> Any:
    databases = client.app[keys.DATABASES].physical[0]
    return next(n for n in (databases.primary, *databases.replicas) if n.label == label)


async def caught_up(client: Client, replicated: Replicated) -> None:
    """Both replicas replayed everything, and the router's watcher knows it."""
    await replicated.wait_caught_up()
    databases = client.app[keys.DATABASES].physical[0]
    await asyncio.sleep(0.2)
    await until(lambda: all(r.up and r.lag == 0 for r in databases.replicas))


async def test_single_database_names_the_primary(client: Client) -> None:
    resp = await client.get("/api/v1/users/nobody/followers")
    assert resp.status == 404
    # Sharded (PICSHARE_TEST_SHARDS), a shard's primary: "shard-N/primary".
    assert served_by(resp)[-1] == "primary" or (
        TEST_SHARDS > 1 and re.fullmatch(r"shard-\d/primary", served_by(resp)[-1])
    )


@pytest.mark.parametrize("policy", ["round_robin", "least_conn"])
async def test_reads_spread_over_the_replicas(
    make_client: MakeClient, replicated: Replicated, policy: str
) -> None:
    client = await make_client(replica_policy=policy)
    await signup(client, "alice")
    await caught_up(client, replicated)
    seen: Counter[str] = Counter()
    for _ in range(20):
        resp = await client.get("/api/v1/users/alice/followers")
        assert resp.status == 200
        seen[served_by(resp)[-1]] += 1  # the list (a first request also fills the cache)
    assert set(seen) == {"replica-1", "replica-2"}, seen
    assert min(seen.values()) >= 5, seen


async def test_hash_keeps_each_user_on_one_replica(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client(replica_policy="hash")
    tokens = {name: await signup(client, name) for name in ("ann", "ben", "cat", "dan", "eve")}
    await caught_up(client, replicated)
    homes: dict[str, set[str]] = {}
    for name, token in tokens.items():
        for _ in range(6):
            resp = await client.get("/api/v1/users/ann/followers", headers=bearer(token))
            assert resp.status == 200
            # The last database named served the list (the first may be the
            # token's lookup, made before anyone is known: no key to hash).
            homes.setdefault(name, set()).add(served_by(resp)[-1])
    assert all(len(labels) == 1 for labels in homes.values()), homes
    assert set().union(*homes.values()) <= {"replica-1", "replica-2"}


async def test_the_writer_reads_its_write_while_replay_is_paused(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    alice, carol = await signup(client, "alice"), await signup(client, "carol")
    await signup(client, "bob")
    await caught_up(client, replicated)
    await replicated.pause(0)
    await replicated.pause(1)
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 200, await resp.text()

    mine = await client.get("/api/v1/users/bob/followers", headers=bearer(alice))
    assert [u["username"] for u in (await mine.json())["items"]] == ["alice"]
    # The token's lookup may use a replica; the list, no replica has replayed.
    assert served_by(mine)[-1] == "primary"
    theirs = await client.get("/api/v1/users/bob/followers", headers=bearer(carol))
    assert (await theirs.json())["items"] == []  # carol may not see it yet
    assert served_by(theirs)[-1].startswith("replica-")

    await replicated.resume(0)
    await replicated.resume(1)
    await caught_up(client, replicated)
    again = await client.get("/api/v1/users/bob/followers", headers=bearer(alice))
    assert served_by(again)[-1].startswith("replica-")  # caught up: back on a replica
    assert [u["username"] for u in (await again.json())["items"]] == ["alice"]


async def test_a_browser_reads_its_write_by_its_cookie(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    await signup(client, "bob")
    await caught_up(client, replicated)
    await replicated.pause(0)
    await replicated.pause(1)
    # Signed up through the page: a session cookie, no bearer token.
    page = await (await client.get("/signup", headers={"Accept": "text/html"})).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    resp = await client.post(
        "/signup",
        data={
            "username": "dora",
            "email": "dora@example.com",
            "password": "correct horse",
            "csrf_token": csrf.group(1),
        },
        allow_redirects=False,
    )
    assert resp.status in (302, 303), await resp.text()
    assert "picshare_wal" in {c.key for c in client.session.cookie_jar}
    profile = await client.get("/api/v1/users/dora/followers")
    assert profile.status == 200  # the new account exists for its own browser
    # The session's lookup and the list: the primary, as no replica has the account.
    assert set(served_by(profile)) == {"primary"}


async def test_a_dead_and_a_lagging_replica_are_skipped(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client(max_replica_lag=0.5)
    alice = await signup(client, "alice")
    await signup(client, "bob")
    await caught_up(client, replicated)

    await replicated.stop_replica(0)
    await until(lambda: not node(client, "replica-1").up)
    for _ in range(6):
        resp = await client.get("/api/v1/users/alice/followers")
        assert served_by(resp)[-1] == "replica-2"
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["checks"]["replica-1"].startswith("down")

    await replicated.pause(1)
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 200
    await until(lambda: node(client, "replica-2").lag > 0.5)
    resp = await client.get("/api/v1/users/alice/followers")
    assert served_by(resp)[-1] == "primary"  # one replica down, the other too far behind
    metrics = await (await client.get("/metrics")).text()
    assert 'picshare_database_up{database="replica-1",role="replica"} 0.0' in metrics
    assert 'picshare_database_replay_lag_seconds{database="replica-2",role="replica"}' in metrics

    await replicated.resume(1)
    await replicated.start_replica(0)
    await caught_up(client, replicated)
    resp = await client.get("/api/v1/users/alice/followers")
    assert served_by(resp)[-1].startswith("replica-")


async def test_primary_down_reads_stay_up_and_writes_503_until_it_returns(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    warm = await upload_ready(client, bob, jpeg_bytes(64, 48))
    cold = await upload_ready(client, bob, jpeg_bytes(48, 64))
    assert (await client.get(f"/api/v1/photos/{warm['id']}")).status == 200  # now cached
    await caught_up(client, replicated)

    await replicated.stop_primary()
    await until(lambda: not node(client, "primary").up)
    html = {"Accept": "text/html"}
    reads = [
        (f"/api/v1/photos/{warm['id']}", {}),  # a cache hit
        (f"/api/v1/photos/{cold['id']}", {}),  # filled from a replica
        (f"/p/{cold['id']}", html),
        ("/u/bob", html),
        ("/", html),
        ("/api/v1/users/bob", {}),
        ("/api/v1/users/bob/followers", {}),
        ("/api/v1/photos", {}),
        ("/api/v1/feed", bearer(alice)),
        ("/api/v1/me", bearer(alice)),
    ]
    for path, headers in reads:
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, (path, await resp.text())
        assert resp.headers.get("PicShare-Stale") == "1", path

    started = time.monotonic()
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 503
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert int(resp.headers["Retry-After"]) >= 1
    resp = await client.patch("/api/v1/me", json={"bio": "x"}, headers=bearer(alice))
    assert resp.status == 503
    assert time.monotonic() - started < 2.0  # failed fast, not after a timeout
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["checks"]["database"] != "ok"

    await replicated.start_primary()
    await until(lambda: node(client, "primary").up)
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/users/bob/followers")
    assert "PicShare-Stale" not in resp.headers


async def test_a_logged_out_token_stops_working_at_once(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    token = await signup(client, "alice")
    await caught_up(client, replicated)
    await replicated.pause(0)
    await replicated.pause(1)
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.status == 204
    # Both replicas still hold the token unrevoked; the primary decides.
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401


async def test_one_database_down_then_back_without_a_restart(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client(replicas=[])
    alice = await signup(client, "alice")
    await signup(client, "bob")
    await replicated.stop_primary()
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 503 and resp.headers["Retry-After"]
    await replicated.start_primary()
    resp = await client.put("/api/v1/users/bob/follow", headers=bearer(alice))
    assert resp.status == 200, await resp.text()
    assert served_by(resp)[-1] == "primary"


async def test_money_never_reads_a_replica_and_is_503_without_the_primary(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    alice = await signup(client, "alice")
    await signup(client, "bob")
    key = {"Idempotency-Key": "topup-1", **bearer(alice)}
    resp = await client.post("/api/v1/wallet/topup", json={"amount_cents": 500}, headers=key)
    assert resp.status == 201, await resp.text()
    await caught_up(client, replicated)
    resp = await client.get("/api/v1/wallet", headers=bearer(alice))
    assert resp.status == 200
    assert set(served_by(resp)[1:]) == {"primary"}  # after the token's lookup

    await replicated.stop_primary()
    await until(lambda: not node(client, "primary").up)
    resp = await client.get("/api/v1/wallet", headers=bearer(alice))
    assert resp.status == 503  # never a stale balance
    assert resp.headers["Retry-After"]
    tip = {"Idempotency-Key": "tip-1", **bearer(alice)}
    resp = await client.post(
        "/api/v1/payments/tips", json={"to": "bob", "amount_cents": 1}, headers=tip
    )
    assert resp.status == 503


async def test_an_account_turned_private_is_private_at_once_for_others(
    make_client: MakeClient, replicated: Replicated
) -> None:
    client = await make_client()
    owner, other = await signup(client, "owner"), await signup(client, "other")
    await caught_up(client, replicated)
    for path in ("/api/v1/users/owner/followers", "/api/v1/photos?user=owner"):
        assert (await client.get(path, headers=bearer(other))).status == 200
    await replicated.pause(0)
    await replicated.pause(1)
    resp = await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    assert resp.status == 200
    # Both replicas still hold the account as public; the decision is fresh.
    for path in ("/api/v1/users/owner/followers", "/api/v1/photos?user=owner"):
        assert (await client.get(path, headers=bearer(other))).status == 404, path


def test_the_wal_cookie_keeps_a_position_per_shard() -> None:
    from handlers.middlewares import _cookie_value, _positions

    assert _positions("1a2b") == {"": 0x1A2B}
    assert _cookie_value({"": 0x1A2B}) == "1a2b"
    both = {"shard-1": 0x10, "shard-2": 0xFF}
    assert _cookie_value(both) == "shard-1:10|shard-2:ff"
    assert _positions("shard-1:10|shard-2:ff") == both
    # Forged or broken parts count for nothing; the rest still does.
    assert _positions("shard-1:10|evil:ff|shard-2:zz|shard-3:") == {"shard-1": 0x10}
    assert _positions("x" * 4000) == {}
