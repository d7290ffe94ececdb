"""The home feed over GraphQL against the same feed over REST, one run.

One real `run.py serve` (rate limits raised, as every HTTP bench here), a
viewer following an owner of 20 ready photos, each with a like and a
comment. The same page (20 photos, the fields REST's photo has) is asked
for, with the viewer's bearer token, as `GET /api/v1/feed` and as a GraphQL
query over `GET /graphql?query=`, in turns over several rounds; the ratio of
each round is kept. Both go through the same service (and its first-page
cache); GraphQL adds parsing, validation, the cost and depth check and
resolving (a compiled plan per document, handlers/graphql/compiled.py). Aim:
GraphQL at least half REST's requests per second; the server's CPU per
request is shown beside (REST's over GraphQL's: the same ratio on a server
with its cores to itself), being steadier than req/s on a shared machine.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench._common import Options, Row, photo_like, picshare_server, save_jpeg, say, signup
from bench.loadgen import NOISE_LIMIT, LoadResult, choose_tool, measure
from bench.requests import _cpu_us, _upload_photos

CONNECTIONS = 32
PHOTOS = 20
AIM = 0.5
FEED = """{ feed(first: 20) { edges { node {
  id owner { username displayName } caption tags width height blurhash status
  likeCount commentCount likedByMe createdAt urls { original large medium thumb }
} } pageInfo { hasNextPage endCursor } } }"""


async def run(opts: Options) -> list[Row]:
    tool = choose_tool(opts.loadgen)
    duration = 1.0 if opts.quick else 3.0
    rounds = 1 if opts.quick else 3
    say(f"  load: {tool}, {CONNECTIONS} connections, {duration:.0f} s per run, {rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        files = [
            save_jpeg(photo_like((640, 480), i), Path(tmp) / f"p{i}.jpg") for i in range(PHOTOS)
        ]
        data = Path(tmp) / "data"
        limits = {f"PICSHARE_RATELIMIT_{n}": "1000000/1s" for n in ("READS", "WRITES", "UPLOADS")}
        server, base = picshare_server(data, env=limits)
        async with server:
            async with aiohttp.ClientSession() as session:
                owner = await signup(session, base, "owner")
                viewer = await signup(session, base, "viewer")
                ids = await _upload_photos(session, base, owner, files)
                auth = {"Authorization": f"Bearer {viewer}"}
                await _ok(session, "PUT", f"{base}/api/v1/users/owner/follow", auth)
                for photo_id in ids:
                    await _ok(session, "PUT", f"{base}/api/v1/photos/{photo_id}/like", auth)
                    url = f"{base}/api/v1/photos/{photo_id}/comments"
                    async with session.post(url, json={"text": "nice"}, headers=auth) as resp:
                        assert resp.status == 201, await resp.text()
                say(f"  {len(ids)} photos ready, liked and commented")
                urls = {
                    "rest": f"{base}/api/v1/feed?limit=20",
                    "graphql": f"{base}/graphql?{urlencode({'query': FEED})}",
                }
                sizes = {name: await _size(session, url, auth) for name, url in urls.items()}
            runs: list[tuple[LoadResult, LoadResult]] = []
            for _ in range(rounds):
                graphql = await _load(server.pid, urls["graphql"], tool, duration, auth, data)
                rest = await _load(server.pid, urls["rest"], tool, duration, auth, data)
                runs.append((graphql, rest))
    return _rows(runs, tool, sizes)


async def _ok(session: aiohttp.ClientSession, method: str, url: str, auth: dict[str, str]) -> None:
    async with session.request(method, url, headers=auth) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{method} {url} answered {resp.status}: {await resp.text()}")


async def _size(session: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> int:
    """The body's size, checking it is a full page (an error answers fast)."""
    async with session.get(url, headers=auth) as resp:
        body = await resp.json()
        if resp.status != 200 or "errors" in body:
            raise RuntimeError(f"GET {url} answered {resp.status}: {str(body)[:300]}")
        items = body["items"] if "items" in body else body["data"]["feed"]["edges"]
        if len(items) != PHOTOS:
            raise RuntimeError(f"GET {url}: {len(items)} photos, not {PHOTOS}")
        return len(await resp.read())


async def _load(
    pid: int, url: str, tool: str, duration: float, auth: dict[str, str], data: Path
) -> LoadResult:
    r = await measure(
        url,
        tool=tool,
        connections=CONNECTIONS,
        duration=duration,
        server_pid=pid,
        related=str(data),
        headers=auth,
    )
    errors = f", {r.errors} ERRORS" if r.errors else ""
    say(
        f"  {url[:60]}: {r.rps:,.0f} req/s ({r.requests} in {r.seconds:.1f} s{errors};"
        f" server CPU {_cpu_us(r):.0f} us per request; {r.others})"
    )
    return r


def _rows(runs: list[tuple[LoadResult, LoadResult]], tool: str, sizes: dict[str, int]) -> list[Row]:
    ratios = sorted(g.rps / r.rps for g, r in runs if r.rps)
    graphql = statistics.median(g.rps for g, _ in runs)
    rest = statistics.median(r.rps for _, r in runs)
    ratio = statistics.median(ratios)
    errors = sum(g.errors + r.errors for g, r in runs)
    noisy = max(max(g.foreign_cores, r.foreign_cores) for g, r in runs) > NOISE_LIMIT
    # The server's CPU per request is steadier than req/s on a shared machine:
    # REST's over GraphQL's is the ratio a server with its cores to itself would reach.
    cpu_graphql = statistics.median(_cpu_us(g) for g, _ in runs)
    cpu_rest = statistics.median(_cpu_us(r) for _, r in runs)
    cpu_ratios = sorted(_cpu_us(r) / _cpu_us(g) for g, r in runs if _cpu_us(g))
    cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else 0.0
    return [
        ("load generator", f"{tool}, {CONNECTIONS} connections"),
        (
            f"home feed, 20 photos: GraphQL / REST ({sizes['graphql']} / {sizes['rest']} B)",
            f"{graphql:,.0f} / {rest:,.0f} req/s = {ratio:.2f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; "
            f"aim >= {AIM}: {'met' if ratio >= AIM else 'MISSED'})"
            + (f", {errors} ERRORS" if errors else "")
            + (", OTHER LOAD on the machine" if noisy else ""),
        ),
        (
            "server CPU per request: GraphQL / REST",
            f"{cpu_graphql:,.0f} / {cpu_rest:,.0f} us: REST's / GraphQL's = {cpu_ratio:.2f} "
            f"(rounds {', '.join(f'{x:.2f}' for x in cpu_ratios)}; "
            f"aim >= {AIM}: {'met' if cpu_ratio >= AIM else 'MISSED'})",
        ),
    ]
