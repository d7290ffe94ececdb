"""What an operator reads of a sharded site: /readyz and /metrics per shard,
and a stopped shard leaving the site degraded, not down."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from picshare.app import create_app
from tests.conftest import AiohttpClient, make_settings
from tests.shard_harness import ShardClusters

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass


async def test_readyz_and_metrics_name_each_shard(
    tmp_path: Path,
    shard_dsns: list[str],
    shard_clusters: ShardClusters,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = make_settings(
        tmp_path / "data",
        "",
        database={"url": "", "shards": tuple(shard_dsns), "connect_timeout": 2.0},
    )
    client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok", body
    assert body["checks"]["shard-1/primary"] == "ok"
    assert body["checks"]["shard-2/primary"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert [d["label"] for d in body["databases"]] == ["shard-1/primary", "shard-2/primary"]
    text = await (await client.get("/metrics")).text()
    assert 'picshare_database_up{database="shard-2/primary",role="primary"} 1.0' in text

    await asyncio.to_thread(shard_clusters.clusters[1].stop)
    resp = await client.get("/readyz")
    body = await resp.json()
    # The other shard still serves its users: degraded, and still in the balancer.
    assert resp.status == 200 and body["status"] == "degraded", body
    assert body["checks"]["shard-2/primary"].startswith("failing")
    assert body["checks"]["database"] == "failing: shard-2/primary"
