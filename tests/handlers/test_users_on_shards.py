"""Users, tokens, idempotency keys and payments on two real shard clusters
(the range router: usernames a-m on the first, also the catalog; n-z on the
second): each row on the shard its id names, lookups that touch only that
database, usernames and emails unique across shards through the catalog's
directory, stale directory claims taken over, renames reaching other shards'
comments, and tips between shards kept in the catalog's ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from picshare import keys, tokens
from picshare.app import create_app
from storage.ids import shard_of
from storage.router import PRIMARY, Databases
from storage.shards import Shards
from tests.conftest import AiohttpClient, bearer, sharded_settings, signup
from tests.handlers.test_pages import browser_signup

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(
    tmp_path: Path,
    shard_dsns: list[str],
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> MakeClient:
    async def make(*, jobs: bool = True) -> Client:
        # Without jobs, nothing in the background (the runner polls every
        # database, the map watcher the catalog): what is counted is the request's.
        settings = sharded_settings(
            tmp_path / "data",
            shard_dsns,
            {"shard_router": "range", "shard_map_poll": 1.0 if jobs else 3600.0},
            jobs={"enabled": jobs},
        )
        client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
        return client

    return make


def _shards(client: Client) -> Shards:
    shards: Shards = client.app[keys.DATABASES]
    return shards


async def _value(db: Databases, query: str, *args: Any) -> Any:
    async with db.read(PRIMARY) as conn:
        return await conn.fetchval(query, *args)


async def _on_each(client: Client, query: str, *args: Any) -> list[Any]:
    """The query's answer from each shard database, in shard order."""
    return [await _value(db, query, *args) for db in _shards(client).physical]


async def _me(client: Client, token: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


class CountingPool:
    """A real pool that counts the connections lent from it (the router takes
    every connection with `acquire`): which databases a request touched."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.lent = 0

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        self.lent += 1
        return self.pool.acquire(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


def _count_connections(client: Client) -> list[CountingPool]:
    counters = []
    for db in _shards(client).physical:
        counting = CountingPool(db.primary.pool)
        db.primary.pool = cast(Any, counting)
        counters.append(counting)
    return counters


async def test_a_user_and_its_token_live_on_the_shard_the_id_names(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    shards = _shards(client)
    alice, nina = await signup(client, "alice"), await signup(client, "nina")
    for token, name, home in ((alice, "alice", 0), (nina, "nina", 1)):
        user_id = int((await _me(client, token))["id"])
        logical = shard_of(user_id)
        assert logical == shards.logical_for(name)
        assert shards.index_of(shards.of_id(user_id)) == home
        # The token names the logical shard; only a hash of it is stored there.
        assert token.startswith(f"psh_{logical}_")
        assert tokens.logical_of(token) == logical
        digest = tokens.hash_token(token)
        found = await _on_each(client, "SELECT count(*) FROM users WHERE id = $1", user_id)
        assert found == [int(i == home) for i in range(2)]
        held = await _on_each(
            client, "SELECT user_id FROM auth_tokens WHERE token_hash = $1", digest
        )
        assert held == [user_id if i == home else None for i in range(2)]
        token_id = await _value(
            shards.physical[home], "SELECT id FROM auth_tokens WHERE token_hash = $1", digest
        )
        assert shard_of(token_id) == logical
        # Both names are in the catalog's directory, with the user's id.
        claimed = await _value(
            shards.catalog, "SELECT user_id FROM user_directory WHERE username = $1", name
        )
        assert claimed == user_id


async def test_lookups_by_id_name_and_token_touch_only_that_database(
    make_client: MakeClient,
) -> None:
    # No job runner nor map watcher: this counts what requests touch.
    client = await make_client(jobs=False)
    tokens_of = {name: await signup(client, name) for name in ("alice", "nina")}
    ids = {name: int((await _me(client, t))["id"]) for name, t in tokens_of.items()}
    users = client.app[keys.USERS]
    counters = _count_connections(client)
    for name, home in (("alice", 0), ("nina", 1)):
        lookups: list[Callable[[], Awaitable[Any]]] = [
            lambda name=name: users.get(ids[name]),  # type: ignore[misc]
            lambda name=name: users.by_username(name),  # type: ignore[misc]
            lambda name=name: users.authenticate(tokens_of[name], "api"),  # type: ignore[misc]
            lambda name=name: _me(client, tokens_of[name]),  # type: ignore[misc]
            lambda name=name: client.post(  # type: ignore[misc]
                "/api/v1/auth/login", json={"username": name, "password": "correct horse"}
            ),
        ]
        for lookup in lookups:
            for counter in counters:
                counter.lent = 0
            found = await lookup()
            assert found is not None
            lent = [counter.lent for counter in counters]
            assert lent[home] >= 1 and lent[1 - home] == 0, (name, lent)


async def test_usernames_and_emails_are_unique_across_shards(make_client: MakeClient) -> None:
    client = await make_client()
    await signup(client, "alice")

    async def attempt(username: str, email: str) -> tuple[int, Any]:
        resp = await client.post(
            "/api/v1/auth/signup",
            json={"username": username, "email": email, "password": "correct horse"},
        )
        return resp.status, await resp.json()

    # nina's row would go to the other shard: only the directory knows the email.
    status, body = await attempt("nina", "ALICE@example.com")
    assert status == 409
    assert [e["field"] for e in body["errors"]] == ["email"]
    status, body = await attempt("Alice", "other@example.com")
    assert status == 409
    assert [e["field"] for e in body["errors"]] == ["username"]
    # Failed sign-ups leave neither a user row nor a claim behind.
    assert await _on_each(client, "SELECT count(*) FROM users") == [1, 0]
    catalog = _shards(client).catalog
    assert await _value(catalog, "SELECT count(*) FROM user_directory") == 1
    status, _ = await attempt("nina", "nina@example.com")
    assert status == 201


async def test_a_stale_directory_claim_is_taken_over(make_client: MakeClient) -> None:
    """A sign-up that died between its claim and its user row leaves a claim
    without a user: once older than a minute, the next sign-up takes it; a
    younger one may be a sign-up still running, and holds."""
    client = await make_client()
    shards = _shards(client)
    home = shards.of_username("nora")

    async def dead_claim(name: str, age: str) -> int:
        async with home.write() as conn:
            user_id: int = await conn.fetchval(
                "SELECT picshare_next_id($1)", shards.logical_for(name)
            )
        async with shards.catalog.write() as conn:
            await conn.execute(
                "INSERT INTO user_directory (user_id, username, email, created_at) "
                f"VALUES ($1, $2, $3, now() - interval '{age}')",
                user_id,
                name,
                f"{name}@example.com",
            )
        return user_id

    stale = await dead_claim("nora", "2 minutes")
    await dead_claim("noel", "5 seconds")
    token = await signup(client, "nora")
    user_id = int((await _me(client, token))["id"])
    assert user_id != stale
    assert (
        await _value(shards.catalog, "SELECT user_id FROM user_directory WHERE username = 'nora'")
        == user_id
    )
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "noel", "email": "noel@example.com", "password": "correct horse"},
    )
    assert resp.status == 409
    # An old claim whose user exists is no stale claim: the user keeps it.
    await shards.catalog.primary.pool.execute(
        "UPDATE user_directory SET created_at = now() - interval '1 hour'"
    )
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "nora", "email": "x@example.com", "password": "correct horse"},
    )
    assert resp.status == 409
    assert (await _me(client, token))["username"] == "nora"


async def test_a_user_insert_that_fails_releases_its_claim(make_client: MakeClient) -> None:
    """A user row the directory does not know (made before it) refuses the
    sign-up on its shard: the claim made for it is given back."""
    client = await make_client()
    home = _shards(client).of_username("oscar")
    async with home.write() as conn:
        await conn.execute(
            "INSERT INTO users (username, email, password_hash) "
            "VALUES ('oscar', 'old@example.com', 'x')"
        )
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "oscar", "email": "new@example.com", "password": "correct horse"},
    )
    assert resp.status == 409
    assert [e["field"] for e in (await resp.json())["errors"]] == ["username"]
    catalog = _shards(client).catalog
    assert await _value(catalog, "SELECT count(*) FROM user_directory") == 0


async def test_an_old_token_is_looked_up_in_the_catalog(make_client: MakeClient) -> None:
    """Tokens made before shards name no shard: the catalog, the database that
    was the only one, holds them."""
    client = await make_client()
    await signup(client, "alice")  # the catalog's shard
    await signup(client, "nina")
    shards = _shards(client)
    for name in ("alice", "nina"):
        old = tokens.new_token()
        assert tokens.logical_of(old) is None
        user = await client.app[keys.USERS].by_username(name)
        assert user is not None
        async with shards.of_user(user.id).write() as conn:
            await conn.execute(
                "INSERT INTO auth_tokens (user_id, token_hash, kind, expires_at) "
                "VALUES ($1, $2, 'api', now() + interval '1 day')",
                user.id,
                tokens.hash_token(old),
            )
        resp = await client.get("/api/v1/me", headers=bearer(old))
        # nina's old-form token is on her shard, not the catalog: not found there.
        assert resp.status == (200 if name == "alice" else 401)


def test_old_tokens_never_read_as_naming_a_shard() -> None:
    # An old token's secret may start with digits and an underscore.
    old = "psh_12_" + "a" * 40
    assert len(old) == len(tokens.PREFIX) + tokens.SECRET_CHARS
    assert tokens.logical_of(old) is None
    assert tokens.logical_of(tokens.new_token(8191)) == 8191
    assert tokens.logical_of("psh_99999_" + "a" * tokens.SECRET_CHARS) is None
    assert tokens.logical_of("xyz_1_" + "a" * tokens.SECRET_CHARS) is None
    with pytest.raises(ValueError, match="out of range"):
        tokens.new_token(8192)


async def test_idempotency_keys_live_on_the_users_shard(make_client: MakeClient) -> None:
    client = await make_client()
    nina = await signup(client, "nina")
    headers = {**bearer(nina), "Idempotency-Key": "k1"}
    first = await client.post("/api/v1/wallet/topup", json={"amount_cents": 500}, headers=headers)
    again = await client.post("/api/v1/wallet/topup", json={"amount_cents": 500}, headers=headers)
    assert first.status == again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _on_each(client, "SELECT count(*) FROM idempotency_keys") == [0, 1]
    wallet = await (await client.get("/api/v1/wallet", headers=bearer(nina))).json()
    assert wallet["balance_cents"] == 500


async def test_a_tip_between_shards_is_one_ledger_and_notifies_on_the_receivers_shard(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    shards = _shards(client)
    alice, nina = await signup(client, "alice"), await signup(client, "nina")
    nina_id = int((await _me(client, nina))["id"])
    topup = await client.post(
        "/api/v1/wallet/topup",
        json={"amount_cents": 1_000},
        headers={**bearer(nina), "Idempotency-Key": "t1"},
    )
    assert topup.status == 201
    tip = await client.post(
        "/api/v1/payments/tips",
        json={"to": "alice", "amount_cents": 300},
        headers={**bearer(nina), "Idempotency-Key": "t2"},
    )
    assert tip.status == 201, await tip.text()
    assert (await tip.json())["balance_cents"] == 700
    alice_wallet = await (await client.get("/api/v1/wallet", headers=bearer(alice))).json()
    assert alice_wallet["balance_cents"] == 300
    # The ledger is the catalog's (the first shard here): nothing on the other.
    assert await _on_each(client, "SELECT count(*) FROM transfers") == [2, 0]
    names = await _value(
        shards.catalog,
        "SELECT array_agg(username ORDER BY username) FROM accounts WHERE kind = 'user'",
    )
    assert names == ["alice", "nina"]
    # The notification is on alice's shard, written once however often its
    # job runs (it ran at once after the tip; the job finds it there).
    assert await _tip_jobs_done(shards) == 1
    query = "SELECT array_agg(text) FROM notifications WHERE kind = 'tip' AND actor_id = $1"
    assert await _on_each(client, query, nina_id) == [["nina tipped you $3.00"], None]
    # Lost after the commit (a crash before it was written): the job writes it.
    away = shards.of_user(int((await _me(client, alice))["id"]))
    await away.primary.pool.execute("DELETE FROM notifications WHERE kind = 'tip'")
    await shards.catalog.primary.pool.execute(
        "UPDATE jobs SET status = 'queued', run_after = now() WHERE kind = 'tip_notification'"
    )
    assert await _tip_jobs_done(shards) == 1
    assert await _on_each(client, query, nina_id) == [["nina tipped you $3.00"], None]
    # The ledger names the other side by the username its wallet keeps.
    moves = await client.app[keys.PAYMENTS].movements(nina_id)
    assert [(m.counterparty, m.amount_cents) for m in moves] == [("alice", -300), (None, 1_000)]


async def _tip_jobs_done(shards: Shards) -> int:
    """How many tip notification jobs there are, once none is left to run."""
    for _ in range(100):
        left, made = await _left_and_made(shards.catalog)
        if left == 0:
            return int(made)
        await asyncio.sleep(0.1)
    raise AssertionError("the tip's notification job did not run")


async def _left_and_made(catalog: Databases) -> tuple[int, int]:
    async with catalog.read(PRIMARY) as conn:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status <> 'done') AS left, count(*) AS made "
            "FROM jobs WHERE kind = 'tip_notification'"
        )
    assert row is not None
    return int(row["left"]), int(row["made"])


async def test_a_new_display_name_reaches_comments_on_other_shards(
    make_client: MakeClient,
) -> None:
    """nina's comment on a photo of alice's lives on alice's shard: nina's
    rename reaches it by a job from nina's shard."""
    client = await make_client()
    shards = _shards(client)
    await signup(client, "alice")
    nina = await signup(client, "nina")
    alice = await client.app[keys.USERS].by_username("alice")
    assert alice is not None
    alice_id = alice.id
    nina_id = int((await _me(client, nina))["id"])
    away = shards.of_user(alice_id)
    async with away.write() as conn:
        photo_id = await conn.fetchval(
            "INSERT INTO photos (id, owner_id, mime, width, height, bytes, upload_key, status) "
            "VALUES (picshare_next_id($1), $2, 'image/jpeg', 1, 1, 1, 'k', 'ready') RETURNING id",
            shard_of(alice_id),
            alice_id,
        )
        await conn.execute(
            "INSERT INTO comments (id, photo_id, user_id, username, display_name, text) "
            "VALUES (picshare_next_id($1), $2, $3, 'nina', 'nina', 'hello')",
            shard_of(photo_id),
            photo_id,
            nina_id,
        )
    for display_name in ("Nina N.", "Nina 2"):
        resp = await client.patch(
            "/api/v1/me", json={"display_name": display_name}, headers=bearer(nina)
        )
        assert resp.status == 200, await resp.text()
    query = "SELECT array_agg(status) FROM jobs WHERE kind = 'rename_in_comments'"
    for _ in range(100):
        statuses = await _value(shards.of_user(nina_id), query)
        if statuses == ["done", "done"]:
            break
        await asyncio.sleep(0.1)
    assert statuses == ["done", "done"]  # one job per edit, for the one other shard
    name = await _value(away, "SELECT display_name FROM comments WHERE user_id = $1", nina_id)
    assert name == "Nina 2"


async def test_a_browser_session_lives_on_the_users_shard(make_client: MakeClient) -> None:
    """A session id is a token too: it names the user's shard and is kept there."""
    client = await make_client()
    await browser_signup(client, "nina")  # answered 303 (asserted there)
    assert await _on_each(client, "SELECT count(*) FROM auth_tokens WHERE kind = 'session'") == [
        0,
        1,
    ]
    me = await client.get("/api/v1/me")  # the cookie, on the second shard only
    assert me.status == 200
    assert (await me.json())["username"] == "nina"


async def test_concurrent_sign_ups_for_one_email_on_two_shards_make_one_user(
    make_client: MakeClient,
) -> None:
    client = await make_client()

    async def attempt(username: str) -> int:
        resp = await client.post(
            "/api/v1/auth/signup",
            json={"username": username, "email": "same@example.com", "password": "correct horse"},
        )
        return resp.status

    statuses = await asyncio.gather(*(attempt(n) for n in ("alma", "nils", "bert", "otto")))
    assert sorted(statuses) == [201, 409, 409, 409]
    assert sum(await _on_each(client, "SELECT count(*) FROM users")) == 1
    catalog = _shards(client).catalog
    assert await _value(catalog, "SELECT count(*) FROM user_directory") == 1
