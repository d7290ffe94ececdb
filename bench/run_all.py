"""Run PicShare's benchmarks and print one summary table.

python run.py bench [--quick] [--only NAME[,NAME]] [--loadgen auto|python|aiohttp|wrk]

Names: renditions, ready, upload, requests, social, cache, cache_http, ratelimit, ws,
router, tips, shards, edge, graphql, events, gateway, search.
--quick is a smoke run (fewer iterations, smaller images and files, 1 s load
runs). Exit status 1 if a
benchmark failed; the others still run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is bench/ itself; there `import requests` would
# find bench/requests.py. Put the repository root there instead.
_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = _ROOT
elif _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Coroutine  # noqa: E402
from typing import Any  # noqa: E402

import uvloop  # noqa: E402

from bench import (  # noqa: E402
    cache,
    cache_http,
    edge,
    events,
    gateway,
    graphql,
    ratelimit,
    ready,
    renditions,
    router,
    search,
    shards,
    social,
    tips,
    upload,
    ws_fanout,
)
from bench import requests as requests_bench  # noqa: E402
from bench._common import Options, Row, say  # noqa: E402
from bench.loadgen import TOOLS  # noqa: E402

Bench = Callable[[Options], Coroutine[Any, Any, list[Row]]]
BENCHES: dict[str, Bench] = {
    "renditions": renditions.run,
    "ready": ready.run,
    "upload": upload.run,
    "requests": requests_bench.run,
    "social": social.run,
    "search": search.run,
    "cache_http": cache_http.run,
    "ratelimit": ratelimit.run,
    "cache": cache.run,
    "ws": ws_fanout.run,
    "router": router.run,
    "tips": tips.run,
    "shards": shards.run,
    "edge": edge.run,
    "graphql": graphql.run,
    "events": events.run,
    "gateway": gateway.run,
}
# The servers the benchmarks start send thousands of requests a second from
# one address; under the default rate limits most would be 429s. The limiter
# stays on (its cost is part of each figure), with room for that.
BENCH_RATE_LIMITS = {
    f"PICSHARE_RATELIMIT_{name}": "1000000/1s" for name in ("UPLOADS", "LOGIN", "WRITES", "READS")
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="repeatable")
    parser.add_argument("--loadgen", choices=TOOLS, default="auto", help="auto: wrk if installed")
    argv = sys.argv[1:] if argv is None else argv
    # run.py's argparse.REMAINDER refuses `run.py bench --quick`; `run.py bench -- --quick`
    # gets through it with the '--' kept, so drop that.
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    names = [n for item in args.only for n in item.split(",") if n] or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    opts = Options(quick=args.quick, loadgen=args.loadgen)
    for name, value in BENCH_RATE_LIMITS.items():
        os.environ.setdefault(name, value)  # inherited by every server subprocess
    started = time.perf_counter()
    results: list[tuple[str, list[Row]]] = []
    failed = False
    for name in names:
        say(f"== {name}{' (quick)' if opts.quick else ''}")
        t0 = time.perf_counter()
        rows: list[Row]
        try:
            # One fresh uvloop per benchmark: a failure cannot leave tasks behind for the next.
            rows = uvloop.run(BENCHES[name](opts))
        except Exception as exc:
            failed = True
            traceback.print_exc()
            rows = [("FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")]
        rows.append(("(benchmark time)", f"{time.perf_counter() - t0:.1f} s"))
        results.append((name, rows))
    _print_table(results, time.perf_counter() - started, opts)
    return 1 if failed else 0


def _print_table(results: list[tuple[str, list[Row]]], total: float, opts: Options) -> None:
    width = max((len(label) for _, rows in results for label, _ in rows), default=10)
    say("")
    say(f"PicShare benchmarks{' (--quick)' if opts.quick else ''}, {total:.1f} s in all")
    for name, rows in results:
        say(f"\n[{name}]")
        for label, value in rows:
            say(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
