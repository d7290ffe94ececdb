"""Search at volume, through the search index (`search_photos`): a very
common word, a rare word, a prefix and a misspelt username, each over HTTP
against a real `run.py serve` (p50 / p99, one request at a time) beside the
plain EXPLAIN ANALYZE of the SQL; the reference, in the same run, is the
caption query from before the index (every match ranked, on `photos`).

Seeds 20k users and 200k photos (`--quick`: a tenth) with `run.py seed`
into a fresh database (the machine's PostgreSQL when reachable, as
bench/social.py), marks 20 captions with a rare word, then times
`run.py search reindex --restart` over all of them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench._common import PYTHON, ROOT, Options, Row, percentile, picshare_server
from bench.social import _explain_ms, _http_latencies, _login, seeded_site
from picshare.search import CANDIDATES_PER_RESULT, RECENT_WINDOW
from storage import search_repo
from storage.photos_repo import _COLUMNS as PHOTO_COLUMNS
from storage.visibility import VISIBLE

LIMIT = 10  # the API's page of photos (handlers/api_inbox.py)
RARE = "albatross"
# The caption query before the index: every match ranked, then the best ten.
BEFORE_SQL = (
    f"SELECT {PHOTO_COLUMNS}, ts_rank(p.caption_tsv, to_tsquery('simple', $2)) AS rank "
    "FROM photos p JOIN users u ON u.id = p.owner_id "
    f"WHERE p.caption_tsv @@ to_tsquery('simple', $2) AND {VISIBLE} "
    "ORDER BY ts_rank(p.caption_tsv, to_tsquery('simple', $2)) DESC, p.id DESC LIMIT $3"
)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(opts: Options) -> list[Row]:
    scale = 10 if opts.quick else 1
    users, photos = 20_000 // scale, 200_000 // scale
    n = 50 if opts.quick else 300
    rows: list[Row] = []
    async with seeded_site("search", users=users, photos=photos, likes=photos // 10) as site:
        dsn, data, env, seconds = site
        rows.append(
            (f"seed {users:,} users, {photos:,} photos (COPY, indexed)", f"{seconds:.1f} s")
        )
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "UPDATE photos SET caption = caption || $1 WHERE id IN "
                "(SELECT id FROM photos ORDER BY random() LIMIT 20)",
                f" {RARE}",
            )
            started = time.monotonic()
            data_dir = ("--data-dir", str(data))
            await asyncio.to_thread(
                subprocess.run,
                [PYTHON, str(ROOT / "run.py"), "search", "reindex", "--restart", *data_dir],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            rows.append(
                (
                    f"run.py search reindex, {photos:,} photos",
                    f"{time.monotonic() - started:.1f} s",
                )
            )
            await conn.execute("ANALYZE")
            viewer = await conn.fetchrow(
                "SELECT id, username FROM users ORDER BY following_count DESC LIMIT 1"
            )
            someone = await conn.fetchval(
                "SELECT username FROM users WHERE username LIKE '%.%' ORDER BY id LIMIT 1 OFFSET 77"
            )
            assert viewer is not None
            assert someone is not None
            common = await conn.fetchval(
                "SELECT word FROM ts_stat('SELECT tsv FROM search_photos') "
                "ORDER BY ndoc DESC LIMIT 1"
            )
            share = await conn.fetchval(
                "SELECT count(*)::float / (SELECT count(*) FROM search_photos) FROM "
                "search_photos WHERE tsv @@ to_tsquery('simple', $1)",
                common,
            )
            rows.append(("very common word", f"'{common}': in {share:.0%} of captions"))
            misspelt = someone[: len(someone) // 2] + someone[len(someone) // 2 + 1 :]
            tag = await conn.fetchval(
                "SELECT tag FROM search_tags WHERE length(tag) >= 6 "
                "GROUP BY tag ORDER BY sum(photo_count) DESC LIMIT 1"
            )
            assert tag is not None
            bad_tag = tag[:-2] + tag[-1]
            server, base = picshare_server(
                data, env={"PICSHARE_DATABASE_URL": dsn, "PICSHARE_SERVER_ACCESS_LOG": "false"}
            )
            async with server, aiohttp.ClientSession() as session:
                headers = await _login(session, base, viewer["username"])
                cases: list[tuple[str, str, str, tuple[Any, ...]]] = []
                for label, q in (
                    (f"very common word '{common}'", common),
                    (f"rare word '{RARE}' (20 photos)", RARE),
                    (f"prefix '{common[:3]}'", common[:3]),
                ):
                    args = (
                        viewer["id"],
                        f"{q}:*",
                        LIMIT,
                        LIMIT * CANDIDATES_PER_RESULT,
                        RECENT_WINDOW,
                    )
                    # The statement the repository ends with: the window's,
                    # or the GIN index's when the window had too few.
                    hits = len(await conn.fetch(search_repo.RECENT_PHOTOS_SQL, *args))
                    if hits >= LIMIT:
                        cases.append((label, q, search_repo.RECENT_PHOTOS_SQL, args))
                    else:
                        cases.append((label, q, search_repo.ALL_PHOTOS_SQL, args[:4]))
                name_args = (misspelt, search_repo.like_prefix(misspelt), LIMIT)
                cases.append(
                    (
                        f"misspelt username '{misspelt}'",
                        misspelt,
                        search_repo.USERS_SQL,
                        name_args,
                    )
                )
                # Usernames and tags from the index (search_users, search_tags).
                start = someone[:4]
                cases.append(
                    (
                        f"username prefix '@{start}'",
                        f"%40{start}",
                        search_repo.USERS_PREFIX_SQL,
                        (start, search_repo.like_prefix(start), LIMIT),
                    )
                )
                for label, t in (
                    (f"tag prefix '#{tag[:3]}'", tag[:3]),
                    (f"misspelt tag '#{bad_tag}'", bad_tag),
                ):
                    cases.append(
                        (
                            label,
                            f"%23{t}",
                            search_repo.TAGS_SQL,
                            (t, search_repo.like_prefix(t), LIMIT * 2),
                        )
                    )
                for label, q, sql, args in cases:
                    url = f"{base}/api/v1/search?q={q}"
                    cpu = _cpu_seconds(server.pid)
                    http = await _http_latencies(session, url, headers, n)
                    # The server's own CPU per request (warm-up included):
                    # steadier than latency on a busy machine.
                    cpu_ms = (_cpu_seconds(server.pid) - cpu) / (n + 5) * 1000
                    plain = await _explain_ms(conn, sql, args, min(n, 100))
                    p50, p99 = percentile(http, 50), percentile(http, 99)
                    rows.append(
                        (
                            f"search {label}: HTTP p50 / p99; server CPU; SQL p50",
                            f"{p50 * 1000:.2f} / {p99 * 1000:.2f} ms; {cpu_ms:.2f} ms; "
                            f"{statistics.median(plain) * 1000:.2f} ms",
                        )
                    )
                # The same run's yardstick for HTTP on this machine now: the
                # signed-out front page (0.6 ms p50 on a quiet machine, README).
                front = await _http_latencies(session, f"{base}/api/v1/photos", {}, n)
                rows.append(
                    (
                        "reference: front page (20 photos), HTTP p50 / p99",
                        f"{percentile(front, 50) * 1000:.2f} / "
                        f"{percentile(front, 99) * 1000:.2f} ms",
                    )
                )
                before = await _explain_ms(
                    conn, BEFORE_SQL, (viewer["id"], f"{common}:*", LIMIT), min(n, 30)
                )
                rows.append(
                    (
                        f"reference: '{common}' before the index (all matches ranked), SQL p50",
                        f"{statistics.median(before) * 1000:.2f} ms",
                    )
                )
        finally:
            await conn.close()
    return rows
