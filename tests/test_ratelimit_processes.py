"""Rate limits across real server processes (`run.py serve`).

Two PicShare processes on different ports share one Redis and one
PostgreSQL: requests alternating between them spend one budget, exactly.
Then one process whose Redis is killed mid-run: reads fail open, writes are
limited by that process alone.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from tests.harness import database_env
from tests.own_redis import own_redis
from tests.servers import ServerProcess, picshare_process, signup_over_http

TIMEOUT = aiohttp.ClientTimeout(total=30)


async def _patch(
    session: aiohttp.ClientSession, server: ServerProcess, auth: dict[str, str], bio: str
) -> tuple[int, str | None, str | None]:
    async with session.patch(f"{server.base}/api/v1/me", json={"bio": bio}, headers=auth) as resp:
        return resp.status, resp.headers.get("RateLimit"), resp.headers.get("Retry-After")


async def test_the_rate_limit_holds_across_both_processes(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {
        **database_env(database_url),
        "PICSHARE_REDIS_URL": redis_url,
        "PICSHARE_RATELIMIT_WRITES": "6/600s",  # T = 100 s: nothing refills during the test
        "PICSHARE_JOBS_ENABLED": "false",
    }
    async with (
        picshare_process(tmp_path / "one", env, tmp_path / "one.log") as one,
        picshare_process(tmp_path / "two", env, tmp_path / "two.log") as two,
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
    ):
        auth = await signup_over_http(session, one.base, "shared")
        results = [
            await _patch(session, server, auth, f"bio {i}")
            for i, server in enumerate([one, two] * 5)
        ]
        statuses = [status for status, _, _ in results]
        assert statuses == [200] * 6 + [429] * 4
        # Each success spends 100 s of the shared budget, whichever process took it
        # (`t` may trail by a second or two on a slow machine).
        for i, (_, limit, _) in enumerate(results[:6]):
            match = re.fullmatch(r'"writes";r=(\d+);t=(\d+)', limit or "")
            assert match, limit
            assert int(match[1]) == 5 - i
            assert 100 * (i + 1) - 2 <= int(match[2]) <= 100 * (i + 1)
        assert all(98 <= int(retry or 0) <= 100 for _, _, retry in results[6:])
        # A burst at both at once: still nothing more gets through.
        burst = await asyncio.gather(*(_patch(session, s, auth, "burst") for s in [one, two] * 10))
        assert {status for status, _, _ in burst} == {429}


async def test_redis_killed_under_a_running_process(tmp_path: Path, database_url: str) -> None:
    with own_redis() as redis:
        env = {
            **database_env(database_url),
            "PICSHARE_REDIS_URL": redis.url,
            "PICSHARE_RATELIMIT_WRITES": "3/600s",
            "PICSHARE_RATELIMIT_READS": "2/600s",
            "PICSHARE_JOBS_ENABLED": "false",
        }
        async with (
            picshare_process(tmp_path / "one", env, tmp_path / "one.log") as server,
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
        ):
            auth = await signup_over_http(session, server.base, "lonely")
            for expected in (200, 200, 429):  # reads: 2 per 600 s, through Redis
                async with session.get(f"{server.base}/api/v1/photos") as resp:
                    assert resp.status == expected
            assert (await _patch(session, server, auth, "a"))[0] == 200

            redis.kill()

            for _ in range(5):  # fail open
                async with session.get(f"{server.base}/api/v1/photos") as resp:
                    assert resp.status == 200
                    assert "RateLimit" not in resp.headers
            # The process limits writes on its own, from a fresh count.
            statuses = [(await _patch(session, server, auth, "b"))[0] for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            async with session.get(f"{server.base}/healthz") as resp:
                assert resp.status == 200
