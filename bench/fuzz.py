"""Fuzz every operation of /openapi.json, API and pages, for longer than the suite does.

python -m bench.fuzz [--examples 50] [--seed N] [--budget SECONDS]

The suite (tests/handlers/test_openapi_fuzz.py) runs a small fixed sample;
this runs `--examples` cases per operation in each of the four passes
(signed-in browser and anonymous client, valid and invalid data) with a
random seed (printed, so a finding can be replayed), against a fresh
`run.py serve` and database. Rate limits are off: the fuzz is one client.
Exit status 1 on any 5xx or any answer the document does not declare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path

from bench._common import fresh_database, picshare_server, say
from tests.fuzzing import ALL_PASSES, fuzz


async def main(examples: int, seed: int, budget: float | None) -> int:
    with tempfile.TemporaryDirectory(prefix="picshare-fuzz-") as tmp:
        async with fresh_database(Path(tmp)) as dsn:
            env = {
                **os.environ,
                "PICSHARE_DATABASE_URL": dsn,
                "PICSHARE_RATELIMIT_ENABLED": "false",
                "PICSHARE_SERVER_ACCESS_LOG": "false",
            }
            server, base = picshare_server(Path(tmp) / "data", env=env)
            async with server:
                report = await asyncio.to_thread(
                    fuzz, base, examples=examples, seed=seed, budget=budget, passes=ALL_PASSES
                )
    say(
        f"fuzz: seed {seed}, {examples} examples per operation and pass, "
        f"{len(report.operations)} operations, {report.cases} requests in {report.seconds:.0f} s"
    )
    say("  statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())))
    for finding in report.findings[:20]:
        say(f"\n{finding}")
    say(f"  5xx: {report.server_errors()}, findings: {len(report.findings)}")
    return 1 if report.findings or report.server_errors() else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="seconds, then stop")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    sys.exit(asyncio.run(main(args.examples, seed, args.budget)))
