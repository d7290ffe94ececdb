"""A PicShare process that follows someone and is killed on the way (see
tests/picshare/test_social_shards.py, the SIGKILL test).

    python -m tests.follow_crash_child DATA_DIR FOLLOWER_ID FOLLOWEE DSN...

It starts the app as `run.py serve` would (its database, services and
pools; the job runner off, so only the request itself could finish the
follow), says `following` and follows. The test holds the followee's
shard's `follows` table locked, so the follow commits its first half and
then waits in its second: that is where the test kills it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from picshare import keys
from picshare.app import create_app
from picshare.config import load_settings
from storage import users_repo
from storage.router import PRIMARY


async def main(data_dir: Path, follower_id: int, followee: str, dsns: list[str]) -> None:
    settings = load_settings(
        env={},
        overrides={
            "server": {"data_dir": str(data_dir), "secret_key": "crash-test-secret-key-0123"},
            "database": {"url": "", "shards": tuple(dsns), "pool_max": 5},
            "jobs": {"enabled": False},
            "media": {"workers": 1},
        },
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    shards = app[keys.DATABASES]
    async with shards.of_user(follower_id).read(PRIMARY) as conn:
        user = await users_repo.user_by_id(conn, follower_id)
    assert user is not None
    print("following", flush=True)
    await app[keys.SOCIAL].follow(followee, user)
    print("followed", flush=True)  # not reached when the test kills us in time
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
