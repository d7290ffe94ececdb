"""`run.py shards move` while a real `run.py serve` takes writes to the moving
logical shard and to its neighbour: every acknowledged comment is there once
afterwards, refused ones (503 while the shard is fenced) were not written, and
the neighbour on the same database never waits."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from storage.shard_routers.hashed import HashRouter
from tests import imaging
from tests.servers import ROOT, picshare_process, signup_over_http

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass


def _two_names_on_the_first_database() -> tuple[str, str, int]:
    """Two usernames of different logical shards, both placed on shard-1 (the
    hash router's first 512 of 1024); the first one's logical shard."""
    router = HashRouter(1024)
    found: list[tuple[str, int]] = []
    for i in range(1000):
        name = f"owner{i}"
        logical = router.logical_for_username(name)
        if logical < 512 and all(logical != other for _, other in found):
            found.append((name, logical))
        if len(found) == 2:
            break
    return found[0][0], found[1][0], found[0][1]


class Commenter:
    def __init__(self, session: aiohttp.ClientSession, base: str, photo: str, auth: dict[str, str]):
        self.session, self.base, self.photo, self.auth = session, base, photo, auth
        self.acknowledged: list[str] = []
        self.refused = 0

    async def run(self, stop: asyncio.Event, tag: str) -> None:
        n = 0
        while not stop.is_set():
            text = f"{tag}-{n}"
            async with self.session.post(
                f"{self.base}/api/v1/photos/{self.photo}/comments",
                json={"text": text},
                headers=self.auth,
            ) as resp:
                if resp.status == 503:
                    # Fenced: not written. The same comment again, as a client would.
                    assert resp.headers.get("Retry-After")
                    self.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status == 201, await resp.text()
            self.acknowledged.append(text)
            n += 1

    async def listed(self) -> list[str]:
        texts: list[str] = []
        url: str | None = f"{self.base}/api/v1/photos/{self.photo}/comments?limit=100"
        while url:
            async with self.session.get(url, headers=self.auth) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            texts += [c["text"] for c in page["items"]]
            cursor = page.get("next_cursor")
            url = (
                f"{self.base}/api/v1/photos/{self.photo}/comments?limit=100&cursor={cursor}"
                if cursor
                else None
            )
        return texts


async def _ready_photo(session: aiohttp.ClientSession, base: str, auth: dict[str, str]) -> str:
    form = aiohttp.FormData()
    form.add_field("file", imaging.jpeg_bytes(320, 240), filename="x.jpg")
    async with session.post(f"{base}/api/v1/upload", data=form, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
        photo_id = str((await resp.json())["id"])
    async with asyncio.timeout(60):
        while True:
            async with session.get(f"{base}/api/v1/photos/{photo_id}", headers=auth) as resp:
                if (await resp.json())["status"] == "ready":
                    return photo_id
            await asyncio.sleep(0.1)


async def test_a_move_while_a_server_takes_writes(tmp_path: Path, shard_dsns: list[str]) -> None:
    env = {
        "PICSHARE_DATABASE_URL": "",
        "PICSHARE_SHARDS": ",".join(shard_dsns),
        "PICSHARE_DATABASE_SHARD_MAP_POLL": "0.2",
        "PICSHARE_RATELIMIT_WRITES": "1000000/1s",
    }
    moving_name, neighbour_name, logical = _two_names_on_the_first_database()
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "serve.log") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        moving_auth = await signup_over_http(session, server.base, moving_name)
        neighbour_auth = await signup_over_http(session, server.base, neighbour_name)
        moving = Commenter(
            session, server.base, await _ready_photo(session, server.base, moving_auth), moving_auth
        )
        neighbour = Commenter(
            session,
            server.base,
            await _ready_photo(session, server.base, neighbour_auth),
            neighbour_auth,
        )
        stop = asyncio.Event()
        writers = [
            asyncio.create_task(moving.run(stop, "m")),
            asyncio.create_task(neighbour.run(stop, "n")),
        ]
        await asyncio.sleep(0.5)
        mover = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run.py"),
            "shards",
            "move",
            str(logical),
            "shard-2",
            "--data-dir",
            str(tmp_path / "data"),
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(mover.communicate(), 120)
        assert mover.returncode == 0, err.decode()[-2000:]
        assert f"moved logical shard {logical} from shard-1/primary" in out.decode()
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*writers)

        # Nothing lost, nothing twice; the neighbour never waited.
        assert sorted(await moving.listed()) == sorted(moving.acknowledged)
        assert sorted(await neighbour.listed()) == sorted(neighbour.acknowledged)
        assert len(moving.acknowledged) > 10 and neighbour.refused == 0
        first = await asyncpg.connect(shard_dsns[0])
        second = await asyncpg.connect(shard_dsns[1])
        try:
            photo = int(moving.photo)
            assert await first.fetchval("SELECT count(*) FROM photos WHERE id = $1", photo) == 0
            assert await second.fetchval("SELECT count(*) FROM photos WHERE id = $1", photo) == 1
            assert await second.fetchval(
                "SELECT comment_count FROM photos WHERE id = $1", photo
            ) == len(moving.acknowledged)
        finally:
            await first.close()
            await second.close()
