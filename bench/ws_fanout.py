"""WebSocket fan-out: one event, N open sockets, time until the last has it.

Two shapes, for N = 1,000 and 10,000 (`--quick`: 200 and 1,000):

A. One user with N sockets (one token, N tabs/devices): another user likes
   one of their photos (`PUT /api/v1/photos/{id}/like`). The clock runs from
   just before the request to the last socket receiving that "like" frame.
B. N users with one socket each, all following X: the 'photo.notify_followers'
   job of a new ready photo of X is inserted into `jobs` directly (the runner
   polls every 0.05 s here), so one statement writes N notifications and N
   sockets get a "photo" frame. The clock runs from that INSERT to the last
   socket receiving it, so it includes up to one poll interval.

Users, follows and tokens are written straight into a fresh database (the
machine's PostgreSQL when reachable, else an embedded one): signing up 10k
users would spend minutes in argon2. Photos are ready rows with fake blob keys
(neither a like nor a follower notification reads the image). Each case sends
one untimed event first (every socket must get it), then times five; the row
shows the event with the median "last" time, and the range of "last". Each
case gets a fresh server, whose RSS is read before and after connecting for a
memory-per-socket figure.

The client is this one process and event loop, on the same 2 cores as the
server: a receive time includes the client's own reading of N frames. The
client freezes its objects (gc.freeze) once connected, so its own full garbage
collections do not land in the figures; the server's do (10k sockets are about
a million tracked objects there).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from bench._common import Options, Row, ServerProcess, fresh_database, picshare_server, say
from picshare.tokens import hash_token, new_token

# Handshakes in flight at once. Under the listen backlog aiohttp's run_app uses
# (128): a burst over it overflows the accept queue, and each dropped SYN costs
# the client a 1 s retransmit, which would be measured instead of the server.
CONNECT_BATCH = 100
CONNECT_TIMEOUT = 30.0  # one handshake
ROUND_TIMEOUT = 30.0  # one event reaching every socket
CASE_TIMEOUT = 120.0  # a whole case: connect, events, close
TIMED_EVENTS = 5
POLL_INTERVAL = "0.05"
# Not a real argon2 hash: nobody logs in with a password here.
DUMMY_HASH = "!bench-no-password"
FOLLOWER = "ws_f_"  # + a 5-digit number


@dataclass(slots=True)
class Fanout:
    """What the sockets' readers saw of the event being waited for."""

    size: int
    expect: str = ""  # photo_id of the awaited notification
    kind: str = ""
    times: list[float | None] = field(default_factory=list)
    got: int = 0
    other: int = 0  # frames that were not the awaited event (duplicates included)
    closed: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def arm(self, kind: str, photo_id: int) -> None:
        self.kind, self.expect = kind, str(photo_id)
        self.times = [None] * self.size
        self.got = 0
        self.done = asyncio.Event()

    def received(self, index: int, data: str, at: float) -> None:
        event = orjson.loads(data)
        if (
            isinstance(event, dict)
            and event.get("type") == "notification"
            and event.get("kind") == self.kind
            and event.get("photo_id") == self.expect
            and self.times[index] is None
        ):
            self.times[index] = at
            self.got += 1
            if self.got == self.size:
                self.done.set()
        else:
            self.other += 1

    def socket_closed(self, code: int | None) -> None:
        self.closed += 1
        key = str(code)
        self.close_codes[key] = self.close_codes.get(key, 0) + 1


@dataclass(frozen=True, slots=True)
class Timing:
    first: float
    p50: float
    last: float
    extra: float  # case A: the like request's answer; case B: job created→finished (DB clock)


class CaseFailed(Exception):
    """A case stopped early; the message says where and why."""


async def run(opts: Options) -> list[Row]:
    sizes = (200, 1_000) if opts.quick else (1_000, 10_000)
    rows: list[Row] = []
    rows.append(_raise_fd_limit(max(sizes)))
    with tempfile.TemporaryDirectory(prefix="picshare-bench-ws-") as tmp_name:
        tmp = Path(tmp_name)
        async with fresh_database(tmp) as dsn:
            data = tmp / "data"
            env = {
                "PICSHARE_DATABASE_URL": dsn,
                "PICSHARE_SERVER_ACCESS_LOG": "false",
                "PICSHARE_JOBS_POLL_INTERVAL": POLL_INTERVAL,
                # The in-process bus: one server process holds every socket.
                "PICSHARE_REDIS_URL": "",
            }
            conn = await asyncpg.connect(dsn)
            world: World | None = None
            try:
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT),
                ) as session:
                    for n in sizes:
                        for label, shape in (
                            (f"A 1 user x {n:,} sockets", _case_a),
                            (f"B {n:,} users x 1 socket", _case_b),
                        ):
                            # A fresh server per case: its RSS before connecting is a
                            # clean baseline, and no case inherits another's garbage.
                            server, base = picshare_server(data, env=env)
                            async with server:
                                if world is None:  # the first start created the schema
                                    world = await _seed(conn, sizes, rows)
                                ctx = Context(session, base, conn, world, server)
                                rows += await _case(label, shape, ctx, n)
            finally:
                await conn.close()
            rows.append(
                (
                    "note",
                    "client (1 process, 1 event loop) and server share this machine's"
                    f" {os.cpu_count()} cores; bus in-process; job poll {POLL_INTERVAL} s",
                )
            )
            rows.append(("server log", _log_problems(data) or "no errors or warnings"))
    return rows


# -- set-up ---------------------------------------------------------------------------


def _raise_fd_limit(sockets: int) -> Row:
    """Soft RLIMIT_NOFILE up to the hard limit (the server subprocess inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:  # the kernel caps it at fs.nr_open
        target = int(Path("/proc/sys/fs/nr_open").read_text())
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            say(f"  could not raise the open files limit: {exc}")
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    say(f"  open files limit: {soft:,} -> {now:,} (hard {hard:,})")
    if now < sockets + 200:
        say(f"  warning: {now:,} open files cannot hold {sockets:,} sockets; expect failures")
    return ("open files limit (ulimit -n)", f"{now:,} (was {soft:,}, hard {hard:,})")


@dataclass(frozen=True, slots=True)
class World:
    owner_id: int  # case A: the user with N sockets
    owner_token: str
    liker_token: str
    stars: dict[int, int]  # case B: N -> id of the user followed by the first N followers
    follower_tokens: list[str]  # ws_f_00001, ws_f_00002...


async def _seed(conn: asyncpg.Connection, sizes: tuple[int, ...], rows: list[Row]) -> World:
    started = time.perf_counter()
    most = max(sizes)

    async def user(name: str) -> int:
        return int(
            await conn.fetchval(
                "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) "
                "RETURNING id",
                name,
                f"{name}@example.com",
                DUMMY_HASH,
            )
        )

    owner_id, liker_id = await user("ws_owner"), await user("ws_liker")
    stars = {n: await user(f"ws_star_{n}") for n in sizes}
    await conn.execute(
        "INSERT INTO users (username, email, password_hash) "
        f"SELECT '{FOLLOWER}' || lpad(i::text, 5, '0'), "
        f"'{FOLLOWER}' || lpad(i::text, 5, '0') || '@example.com', $1 "
        "FROM generate_series(1, $2) AS i",
        DUMMY_HASH,
        most,
    )
    follower_ids = [
        int(r["id"])
        for r in await conn.fetch(
            "SELECT id FROM users WHERE username LIKE $1 ORDER BY username", FOLLOWER + "%"
        )
    ]
    assert len(follower_ids) == most
    for n, star in stars.items():
        await conn.execute(
            "INSERT INTO follows (follower_id, followee_id) "
            "SELECT id, $1 FROM unnest($2::bigint[]) AS id",
            star,
            follower_ids[:n],
        )
    await conn.execute(
        "UPDATE users u SET "
        "follower_count = (SELECT count(*) FROM follows WHERE followee_id = u.id), "
        "following_count = (SELECT count(*) FROM follows WHERE follower_id = u.id) "
        "WHERE u.username LIKE 'ws\\_%'"
    )
    owner_token, liker_token = new_token(), new_token()
    follower_tokens = [new_token() for _ in follower_ids]
    expires = datetime.now(UTC) + timedelta(days=3650)
    records = [
        (user_id, hash_token(token), "api", expires)
        for user_id, token in [
            (owner_id, owner_token),
            (liker_id, liker_token),
            *zip(follower_ids, follower_tokens, strict=True),
        ]
    ]
    await conn.copy_records_to_table(
        "auth_tokens", records=records, columns=["user_id", "token_hash", "kind", "expires_at"]
    )
    await conn.execute("ANALYZE")
    seconds = time.perf_counter() - started
    setup = (
        f"{most + 2 + len(stars):,} users, {len(records):,} tokens,"
        f" {sum(sizes):,} follows in {seconds:.1f} s"
    )
    say(f"  {setup}")
    rows.append(("setup (SQL + COPY)", setup))
    return World(owner_id, owner_token, liker_token, stars, follower_tokens)


async def _ready_photo(conn: asyncpg.Connection, owner_id: int) -> int:
    """A ready photo row (fake blob keys: nothing here reads the image)."""
    fake = uuid.uuid4().hex
    photo_id = await conn.fetchval(
        "WITH p AS (INSERT INTO photos (owner_id, status, mime, width, height, bytes, "
        "upload_key, original_key, large_key, medium_key, thumb_key) "
        "VALUES ($1, 'ready', 'image/jpeg', 1080, 810, 150000, $2, $3, $3, $3, $3) "
        "RETURNING id), c AS (UPDATE users SET photo_count = photo_count + 1 WHERE id = $1) "
        "SELECT id FROM p",
        owner_id,
        f"uploads/bench-ws-{fake}",
        f"r/bench-ws-{fake}.jpg",
    )
    return int(photo_id)


# -- one case -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    session: aiohttp.ClientSession
    base: str
    conn: asyncpg.Connection
    world: World
    server: ServerProcess


Trigger = Callable[[Fanout], Awaitable[Timing]]
# A case's set-up: the N socket URLs, and what sends one event and times it.
Shape = Callable[[Context, int], Awaitable[tuple[list[str], Trigger]]]


async def _case(label: str, shape: Shape, ctx: Context, n: int) -> list[Row]:
    session, server, base = ctx.session, ctx.server, ctx.base
    say(f"  {label}")
    rows: list[Row] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    phase = "set-up"
    try:
        async with asyncio.timeout(CASE_TIMEOUT):
            urls, trigger = await shape(ctx, n)
            fanout = Fanout(len(urls))
            before = _rss_kib(server.pid)
            phase = "connecting"
            overflows = _listen_overflows()
            started = time.perf_counter()
            error = await _connect_all(session, urls, fanout, sockets, readers)
            seconds = time.perf_counter() - started
            overflows = _listen_overflows() - overflows
            if error is not None:
                raise CaseFailed(
                    f"connected {len(sockets):,} of {len(urls):,} in {seconds:.1f} s; {error}"
                )
            after = _rss_kib(server.pid)
            rate = len(urls) / seconds
            say(
                f"    connected {len(urls):,} in {seconds:.2f} s ({rate:,.0f}/s);"
                f" listen queue overflows {overflows:,}"
            )
            rows.append(
                (
                    f"{label}: connect",
                    f"{seconds:.2f} s ({rate:,.0f} sockets/s, {CONNECT_BATCH} at a time;"
                    f" listen queue overflows {overflows:,})",
                )
            )
            per_socket = (after - before) / len(urls)
            say(f"    server RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB")
            rows.append(
                (
                    f"{label}: server RSS",
                    f"{after / 1024:.0f} MiB (+{(after - before) / 1024:.0f} MiB,"
                    f" {per_socket:.1f} KiB/socket)",
                )
            )
            # The client's own full collections over N sockets' objects would be
            # counted as fan-out time: what exists now is left out of them.
            gc.collect()
            gc.freeze()
            phase = "untimed first event"
            await trigger(fanout)
            timings: list[Timing] = []
            for i in range(TIMED_EVENTS):
                phase = f"timed event {i + 1}"
                timing = await trigger(fanout)
                say(
                    f"    event {i + 1}: first {timing.first * 1000:.1f} ms,"
                    f" p50 {timing.p50 * 1000:.1f} ms, last {timing.last * 1000:.1f} ms,"
                    f" {'like answered' if label.startswith('A') else 'job done'}"
                    f" {timing.extra * 1000:.1f} ms"
                )
                timings.append(timing)
            mid = sorted(timings, key=lambda t: t.last)[len(timings) // 2]
            lasts = [t.last * 1000 for t in timings]
            rows.append(
                (
                    f"{label}: first / p50 / last",
                    f"{mid.first * 1000:.1f} / {mid.p50 * 1000:.1f} / {mid.last * 1000:.1f} ms"
                    f" (last-first {(mid.last - mid.first) * 1000:.1f} ms; last of"
                    f" {TIMED_EVENTS} events {min(lasts):.1f}-{max(lasts):.1f} ms)",
                )
            )
            what = "like request answered" if label.startswith("A") else "job created->done"
            extra = statistics.median(t.extra for t in timings) * 1000
            rows.append((f"{label}: {what}", f"{extra:.1f} ms (median)"))
            if fanout.other:
                rows.append((f"{label}: unexpected frames", f"{fanout.other:,}"))
            phase = "closing"
    except CaseFailed as exc:
        say(f"    FAILED ({phase}): {exc}")
        rows.append((f"{label}: FAILED ({phase})", str(exc)))
    except TimeoutError:
        say(f"    FAILED: the case took over {CASE_TIMEOUT:.0f} s ({phase})")
        rows.append((f"{label}: FAILED", f"over {CASE_TIMEOUT:.0f} s, during {phase}"))
    except (aiohttp.ClientError, OSError, asyncpg.PostgresError) as exc:
        # A refused request, a dead server: this case's row says so, the others still run.
        say(f"    FAILED ({phase}): {_describe(exc)}")
        rows.append((f"{label}: FAILED ({phase})", _describe(exc)))
    finally:
        gc.unfreeze()
        closed = await _close_all(sockets, readers)
        left = await _server_sockets(session, base)
        say(f"    closed {closed:,} of {len(sockets):,} sockets; the server now holds {left}")
        if left not in ("0", "?"):
            rows.append((f"{label}: sockets left open on the server", left))
    return rows


async def _case_a(ctx: Context, n: int) -> tuple[list[str], Trigger]:
    session, base, conn, world = ctx.session, ctx.base, ctx.conn, ctx.world
    url = _ws_url(base, world.owner_token)
    headers = {"Authorization": f"Bearer {world.liker_token}"}

    async def trigger(fanout: Fanout) -> Timing:
        photo_id = await _ready_photo(conn, world.owner_id)
        fanout.arm("like", photo_id)
        start = time.perf_counter()
        async with session.put(f"{base}/api/v1/photos/{photo_id}/like", headers=headers) as resp:
            body = await resp.read()
            answered = time.perf_counter() - start
            if resp.status != 200:
                raise CaseFailed(f"the like answered {resp.status}: {body[:200]!r}")
        await _wait_all(fanout, "like")
        return _timing(fanout, start, answered)

    return [url] * n, trigger


async def _case_b(ctx: Context, n: int) -> tuple[list[str], Trigger]:
    base, conn, world = ctx.base, ctx.conn, ctx.world
    star = world.stars[n]
    urls = [_ws_url(base, token) for token in world.follower_tokens[:n]]

    async def trigger(fanout: Fanout) -> Timing:
        photo_id = await _ready_photo(conn, star)
        fanout.arm("photo", photo_id)
        payload = orjson.dumps({"photo_id": photo_id}).decode()
        start = time.perf_counter()
        job_id = await conn.fetchval(
            "INSERT INTO jobs (kind, payload) VALUES ('photo.notify_followers', $1::jsonb) "
            "RETURNING id",
            payload,
        )
        try:
            await _wait_all(fanout, "notify job")
        finally:
            # The runner marks the job done just after it has published.
            job = await _finished_job(conn, job_id)
        assert job is not None
        if job["status"] != "done":
            raise CaseFailed(
                f"job {job['status']} after {job['attempts']} attempt(s): {job['last_error']}"
            )
        return _timing(fanout, start, float(job["took"]))

    return urls, trigger


async def _finished_job(conn: asyncpg.Connection, job_id: int) -> asyncpg.Record | None:
    deadline = time.monotonic() + 10
    while True:
        job = await conn.fetchrow(
            "SELECT status, attempts, last_error, "
            "extract(epoch FROM finished_at - created_at) AS took FROM jobs WHERE id = $1",
            job_id,
        )
        if job is None or job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.01)


def _ws_url(base: str, token: str) -> str:
    return f"{base.replace('http://', 'ws://', 1)}/ws?token={token}"


async def _wait_all(fanout: Fanout, what: str) -> None:
    try:
        await asyncio.wait_for(fanout.done.wait(), ROUND_TIMEOUT)
    except TimeoutError:
        codes = ", ".join(f"{c}: {k}" for c, k in fanout.close_codes.items()) or "none"
        raise CaseFailed(
            f"after the {what}, {fanout.got:,} of {fanout.size:,} sockets got the event"
            f" within {ROUND_TIMEOUT:.0f} s; {fanout.closed:,} closed (codes {codes})"
        ) from None


def _timing(fanout: Fanout, start: float, extra: float) -> Timing:
    delays = sorted(t - start for t in fanout.times if t is not None)
    return Timing(delays[0], statistics.median(delays), delays[-1], extra)


# -- sockets --------------------------------------------------------------------------


async def _connect_all(
    session: aiohttp.ClientSession,
    urls: list[str],
    fanout: Fanout,
    sockets: list[aiohttp.ClientWebSocketResponse],
    readers: list[asyncio.Task[None]],
) -> str | None:
    """Open every socket into `sockets`, CONNECT_BATCH at a time (a reader task each);
    stop at the first batch with a failure, and say what failed."""
    for start in range(0, len(urls), CONNECT_BATCH):
        batch = urls[start : start + CONNECT_BATCH]
        results = await asyncio.gather(
            *(_open(session, url) for url in batch), return_exceptions=True
        )
        failures: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                failures.append(result)
                continue
            index = len(sockets)
            sockets.append(result)
            readers.append(asyncio.create_task(_read(result, index, fanout)))
        if failures:
            kinds: dict[str, int] = {}
            for exc in failures:
                text = _describe(exc)
                kinds[text] = kinds.get(text, 0) + 1
            detail = "; ".join(f"{k} (x{v})" for k, v in kinds.items())
            return (
                f"{len(failures)} of the batch of sockets {start + 1:,}-{start + len(batch):,}"
                f" failed: {detail}"
            )
    return None


def _describe(exc: BaseException) -> str:
    """An error in a few words, without the URL (it holds the token)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: HTTP {exc.status} {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"no handshake within {CONNECT_TIMEOUT:.0f} s"
    return f"{type(exc).__name__}: {str(exc)[:160]}".rstrip(": ")


async def _open(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    async with asyncio.timeout(CONNECT_TIMEOUT):
        return await session.ws_connect(
            url,
            autoping=True,  # answers the server's heartbeat pings
            heartbeat=None,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        )


async def _read(ws: aiohttp.ClientWebSocketResponse, index: int, fanout: Fanout) -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            fanout.received(index, message.data, time.perf_counter())
    fanout.socket_closed(ws.close_code)


async def _close_all(
    sockets: list[aiohttp.ClientWebSocketResponse], readers: list[asyncio.Task[None]]
) -> int:
    """Close every socket (a close frame each, CONNECT_BATCH at a time), then the readers."""
    for start in range(0, len(sockets), CONNECT_BATCH):
        batch = sockets[start : start + CONNECT_BATCH]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*(ws.close() for ws in batch), return_exceptions=True)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return sum(1 for ws in sockets if ws.closed)


async def _server_sockets(session: aiohttp.ClientSession, base: str) -> str:
    """picshare_ws_connections from /metrics, once it drops to 0 (at most 10 s)."""
    value = "?"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/metrics") as resp:
                text = await resp.text()
        except aiohttp.ClientError:
            return "?"
        for line in text.splitlines():
            if line.startswith("picshare_ws_connections "):
                value = f"{float(line.split()[1]):.0f}"
        if value == "0":
            break
        await asyncio.sleep(0.2)
    return value


def _listen_overflows() -> int:
    """TcpExt ListenOverflows, machine-wide: SYNs dropped for a full accept queue."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    tcp_ext = [line.split()[1:] for line in lines if line.startswith("TcpExt:")]
    if len(tcp_ext) < 2:
        return 0
    values = dict(zip(tcp_ext[0], tcp_ext[1], strict=False))
    return int(values.get("ListenOverflows", 0))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _log_problems(data: Path) -> str:
    """The servers' log's ERROR/WARNING/Traceback lines, counted, the first shown."""
    log_path = data.parent / f"{data.name}-server.log"  # where picshare_server puts it
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    bad = [
        line
        for line in lines
        if " ERROR " in line or " WARNING " in line or line.startswith("Traceback")
    ]
    if not bad:
        return ""
    say(f"  server log ({log_path.name}): {len(bad)} ERROR/WARNING/Traceback line(s):")
    for line in list(dict.fromkeys(bad))[:8]:
        say(f"    {line[:300]}")
    return f"{len(bad)} ERROR/WARNING line(s) in {log_path.name}; first: {bad[0][:120]}"
