"""Schemathesis over every operation of `/openapi.json`, pages included,
against a real `run.py serve`: no 5xx, and every answer as the document says.

A small fixed sample (derandomized, so CI sees the same cases each run);
`python -m bench.fuzz` runs the same fuzz longer with a random seed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fuzzing import fuzz
from tests.servers import picshare_process

EXAMPLES = 2  # per operation and pass (tests/fuzzing.py PASSES): about 350 requests


async def test_fuzzing_every_operation_finds_no_5xx_and_no_drift(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {
        "PICSHARE_DATABASE_URL": database_url,
        "PICSHARE_REDIS_URL": redis_url,
        # The fuzz is one client sending hundreds of requests a second.
        "PICSHARE_RATELIMIT_ENABLED": "false",
        "PICSHARE_SERVER_ACCESS_LOG": "false",
    }
    async with picshare_process(tmp_path / "data", env, tmp_path / "server.log") as server:
        report = await asyncio.to_thread(fuzz, server.base, examples=EXAMPLES)
    assert report.server_errors() == 0, report.statuses
    assert not report.findings, "\n\n".join(str(f) for f in report.findings[:5])
    spec_operations = 60
    assert len(report.operations) >= spec_operations, sorted(report.operations)
    # The signed-in browser got past the CSRF check and "not found": forms
    # redirected, pages rendered.
    assert report.statuses.get(303, 0) >= 10 and report.statuses.get(200, 0) >= 30
