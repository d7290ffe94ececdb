"""PicShare's command line: serve, migrate, jobs, bench.

python run.py serve [--host H] [--port P] [--data-dir D] [--replicas N] [--shards M]
                    [--workers N] [--certfile F --keyfile F]
                    [--service all|auth|photos|notifications|search|web|gateway]
                    [--upstream NAME=URL ...] (the gateway)
python run.py nginx-config --upstream HOST:PORT ... [--method round_robin|least_conn|ip_hash]
                    [--listen PORT] [--tls-cert F --tls-key F] [--edge-cache DIR]
python run.py migrate
python run.py shards
python run.py jobs [--status queued|running|done|failed] [--limit N]
python run.py blobs migrate --to s3
python run.py worker [--consumers renditions,notifications,...]
python run.py events dead | retry ID | retry --all
python run.py search reindex [--restart]
python run.py bench [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from aiohttp.log import access_logger as web_log

from handlers.access_log import AccessLog, flush_now
from handlers.log_context import RequestIdFormatter
from handlers.slow_clients import GuardedTCPSite
from picshare import keys
from picshare.app import create_app, relay_for_commands
from picshare.blob_migration import migrate_blobs
from picshare.blob_stores import local_store, open_blob_store, open_s3
from picshare.cluster import Cluster, ClusterError
from picshare.config import Settings, SettingsError, load_settings
from picshare.consumers import UnknownConsumer, names_chosen
from picshare.database import open_shards
from picshare.nginx_config import (
    NginxConfigError,
    add_nginx_arguments,
    nginx_options,
    render_nginx_config,
)
from picshare.progress import Progress
from picshare.relay_amqp import BrokerUnavailable
from picshare.search_index import SearchIndexer
from picshare.seed import SEED_PASSWORD, SeedPlan, seed
from picshare.services import ROLES
from picshare.supervisor import Supervisor
from storage import jobs_repo
from storage.records import JobRecord
from storage.router import PRIMARY
from storage.shard_map import ShardMapError
from storage.shard_move import MoveError, move
from storage.shard_stats import ranges_text, shard_stats

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="PicShare")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve PicShare over HTTP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument(
        "--replicas",
        type=int,
        help="with no database URL: also run N streaming replicas of the embedded database",
    )
    serve.add_argument(
        "--workers", type=int, help="N full processes on this port (SO_REUSEPORT); needs Redis"
    )
    serve.add_argument(
        "--service",
        choices=ROLES,
        help="run one service of PicShare (its routes, consumers and resources), the gateway"
        " in front of them, or all (the default: everything in one process)",
    )
    serve.add_argument(
        "--upstream",
        action="append",
        metavar="NAME=URL",
        help="the gateway: where service NAME answers (repeat for each service)",
    )
    serve.add_argument("--certfile", help="terminate TLS: the certificate chain (PEM)")
    serve.add_argument("--keyfile", help="terminate TLS: the private key (PEM)")
    # Set by the --workers supervisor on its children only.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    add_nginx_arguments(
        sub.add_parser("nginx-config", help="print an nginx configuration for PicShare")
    )
    commands = {
        "migrate": "apply database migrations",
        "jobs": "list jobs",
        "shards": "show the shard map: logical shards, rows and size per database",
    }
    for name, text in commands.items():
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--data-dir")
        if name == "shards":
            cmd.add_argument("action", nargs="?", choices=["move"], help="move a logical shard")
            cmd.add_argument("logical", nargs="?", type=int, help="the logical shard to move")
            cmd.add_argument("target", nargs="?", help="the database to move it to: 2 or shard-2")
        if name == "jobs":
            cmd.add_argument("--status", choices=["queued", "running", "done", "failed"])
            cmd.add_argument("--limit", type=int, default=50)
    cluster = sub.add_parser(
        "cluster",
        help="the whole topology on this machine: nginx, gateway, services, shards, replicas",
    )
    cluster.add_argument("--data-dir")
    cluster.add_argument("--port", type=int, default=8080, help="where nginx serves (8080)")
    worker = sub.add_parser("worker", help="run event consumers and jobs without the HTTP server")
    worker.add_argument("--data-dir")
    worker.add_argument(
        "--consumers",
        help="with PICSHARE_AMQP_URL: the consumers to run, comma-separated (default: all)",
    )
    events = sub.add_parser("events", help="dead-lettered events: list them, or replay them")
    events.add_argument("--data-dir")
    events.add_argument("action", choices=["dead", "retry"])
    events.add_argument("event_id", nargs="?", type=int, help="retry: the event to replay")
    events.add_argument("--all", action="store_true", help="retry: replay every dead event")
    search = sub.add_parser("search", help="the search index: search reindex (resumable)")
    search.add_argument("--data-dir")
    search.add_argument(
        "action", choices=["reindex"], help="index every existing photo, account and tag"
    )
    search.add_argument(
        "--restart", action="store_true", help="start from the first photo, not where it stopped"
    )
    seed = sub.add_parser("seed", help="load a realistic volume of demo data (COPY)")
    seed.add_argument("--data-dir")
    seed.add_argument("--users", type=int, default=20_000)
    seed.add_argument("--photos", type=int, default=200_000)
    seed.add_argument("--likes", type=int, default=1_000_000)
    seed.add_argument("--follows-per-user", type=int, default=30)
    seed.add_argument("--comments", type=int, default=50_000)
    blobs = sub.add_parser("blobs", help="the blob store: blobs migrate --to s3")
    blobs.add_argument("--data-dir")
    blobs.add_argument("action", choices=["migrate"], help="copy the local store to another")
    blobs.add_argument("--to", choices=["s3"], required=True, help="the store to copy to")
    sub.add_parser("bench", help="run the benchmarks in bench/ (options: --quick, --only NAME)")
    for cmd in (serve, seed, worker, events, search, *(sub.choices[name] for name in commands)):
        cmd.add_argument(
            "--shards",
            type=int,
            help="with no database URL: shard across M embedded databases (the same M each time)",
        )
    # The benchmark's own options pass through untouched.
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    handler = logging.StreamHandler()
    # Lines written while a request is handled end with its request id.
    handler.setFormatter(RequestIdFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if args.command == "bench":
        return subprocess.call([sys.executable, str(ROOT / "bench" / "run_all.py"), *extra])
    try:
        settings = load_settings(overrides=_overrides(args))
    except SettingsError as exc:
        print(f"picshare: {exc}", file=sys.stderr)
        return 2
    try:
        return _command(parser, args, settings)
    except (ShardMapError, SettingsError) as exc:
        # The settings and the site's shard map disagree, or a setting only
        # the app can check (a consumer's name): the operator's to fix.
        print(f"picshare: {exc}", file=sys.stderr)
        return 2


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        try:
            tls = _tls(settings)  # a wrong file stops the start at once, not after set-up
        except (ssl.SSLError, OSError) as exc:
            print(f"picshare: server.certfile / server.keyfile: {exc}", file=sys.stderr)
            return 2
        if settings.server.workers > 1:
            return _supervise(settings, sys.argv[1:] if args.argv is None else args.argv)
        return _serve(settings, tls, reuse_port=args.reuse_port)
    if args.command == "nginx-config":
        try:
            print(render_nginx_config(nginx_options(args, settings)), end="")
        except NginxConfigError as exc:
            print(f"picshare: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "migrate":
        return uvloop.run(_migrate(settings))
    if args.command == "worker":
        return _worker(settings, args.consumers)
    if args.command == "cluster":
        return _cluster(settings, args.port)
    if args.command == "events":
        if args.action == "retry" and (args.event_id is None) == (not args.all):
            parser.error("events retry needs an event ID or --all (not both)")
        return uvloop.run(_events(settings, args.action, None if args.all else args.event_id))
    if args.command == "search":
        return uvloop.run(_reindex(settings, restart=args.restart))
    if args.command == "seed":
        plan = SeedPlan(
            users=args.users,
            photos=args.photos,
            likes=args.likes,
            follows_per_user=args.follows_per_user,
            comments=args.comments,
        )
        return uvloop.run(_seed(settings, plan))
    if args.command == "blobs":
        return uvloop.run(_migrate_blobs(settings))
    if args.command == "shards":
        if args.action == "move":
            if args.logical is None or args.target is None:
                parser.error("shards move needs LOGICAL TARGET, e.g. shards move 17 2")
            return uvloop.run(_move(settings, args.logical, args.target))
        return uvloop.run(_shards(settings))
    return uvloop.run(_list_jobs(settings, args.status, args.limit))


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    server: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "workers", "certfile", "keyfile", "service"):
        value = getattr(args, name, None)
        if value is not None:
            server[name] = value
    overrides: dict[str, dict[str, Any]] = {"server": server} if server else {}
    # serve's --upstream NAME=URL (the gateway's); nginx-config's are its own.
    if args.command == "serve" and getattr(args, "upstream", None):
        overrides["gateway"] = {"upstreams": tuple(args.upstream)}
    database: dict[str, Any] = {}
    for flag, key in (("replicas", "embedded_replicas"), ("shards", "embedded_shards")):
        value = getattr(args, flag, None)
        if value is not None:
            database[key] = value
    if database:
        overrides["database"] = database
    return overrides


def _supervise(settings: Settings, argv: list[str]) -> int:
    """`serve --workers N`: this process only keeps N `serve` children up."""
    server = settings.server
    command = [sys.executable, str(ROOT / "run.py"), *argv, "--workers", "1", "--reuse-port"]
    supervisor = Supervisor(
        command,
        workers=server.workers,
        host=server.host,
        port=server.port,
        stop_timeout=server.shutdown_timeout,
    )
    return supervisor.run()


def _serve(settings: Settings, tls: ssl.SSLContext | None, *, reuse_port: bool) -> int:
    # Objects made at start-up live forever: freeze them out of the collector's
    # sight, and collect the old generation less often. With 10k open sockets
    # (~1M tracked objects) a full collection pauses the loop ~0.65 s.
    # Requests themselves leave almost nothing tracked behind (no collection
    # in ~170k requests under wrk), so this is for big heaps, not per request.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_until_stopped(settings, tls, reuse_port=reuse_port))
    return 0


async def _serve_until_stopped(
    settings: Settings, tls: ssl.SSLContext | None, *, reuse_port: bool
) -> None:
    """What web.run_app does, with a site that bounds slow clients (handlers/slow_clients.py)."""
    server = settings.server
    # Set before start-up, so a signal during it (a slow first initdb) stops
    # the server cleanly once it is up rather than killing it half-made.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        create_app(settings),
        handle_signals=False,
        shutdown_timeout=server.shutdown_timeout,
        access_log=web_log if server.access_log else None,
        access_log_class=AccessLog,
        access_log_format=server.access_log_format,
    )
    await runner.setup()
    try:
        site = GuardedTCPSite(
            runner,
            server.host,
            server.port,
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
            # Room for a reconnect storm (every socket after a deploy); aiohttp's 128 stalls it.
            backlog=1024,
            ssl_context=tls,
            reuse_port=reuse_port,
        )
        await site.start()
        print(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)", flush=True)
        await stop.wait()
        # Requests in progress (an upload still arriving) finish first.
        await site.drain(server.shutdown_timeout)
    finally:
        await runner.cleanup()
        flush_now()  # the access log's last lines


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.server.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.server.certfile, settings.server.keyfile)
    return context


def _worker(settings: Settings, consumers: str | None) -> int:
    """The app without its HTTP site: the job runner and the event consumers."""
    if not settings.redis.url:
        # Its caches and live events must be the web processes' own.
        print(
            "picshare: run.py worker shares cache, limits and events with the web"
            " processes through Redis: set PICSHARE_REDIS_URL",
            file=sys.stderr,
        )
        return 2
    if consumers is not None:
        if not settings.events.amqp_url:
            print(
                "picshare: run.py worker --consumers needs a broker: set PICSHARE_AMQP_URL"
                " (without one, every process with jobs runs every consumer)",
                file=sys.stderr,
            )
            return 2
        try:
            names_chosen(consumers)
        except UnknownConsumer as exc:
            print(f"picshare: --consumers: {exc}", file=sys.stderr)
            return 2
        settings = settings.replace(events={"consumers": consumers})
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_work_until_stopped(settings))
    return 0


def _cluster(settings: Settings, port: int) -> int:
    """`run.py cluster` (picshare/cluster.py) until Ctrl-C or SIGTERM."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await Cluster(settings, settings.data_path / "cluster", port).run(stop)

    try:
        uvloop.run(run())
    except ClusterError as exc:
        print(f"picshare: cluster: {exc}", file=sys.stderr)
        return 1
    return 0


async def _work_until_stopped(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    app[keys.PROCESS_KIND] = "worker"
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=settings.server.shutdown_timeout,
    )
    await runner.setup()  # starts every resource: databases, job runner, relay
    try:
        which = settings.events.consumers if settings.events.amqp_url else "all (as jobs)"
        print(f"======== Worker running: consumers {which} ========", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


async def _events(settings: Settings, action: str, event_id: int | None) -> int:
    async with open_shards(settings) as shards, relay_for_commands(settings, shards) as relay:
        try:
            if action == "retry":
                replayed = await relay.retry(event_id)
                if event_id is not None and not replayed:
                    print(f"picshare: no dead event {event_id}", file=sys.stderr)
                    return 1
                print(f"replayed {replayed} dead event(s)")
                return 0
            dead = await relay.dead()
        except BrokerUnavailable as exc:
            print(f"picshare: {exc}", file=sys.stderr)
            return 3
    print(f"{'event':>20}  {'type':<16} {'consumer':<14} {'tries':>5}  last error")
    for item in dead:
        error = item.error.splitlines()[0][:60] if item.error else ""
        print(
            f"{item.event.id:>20}  {item.event.type:<16} {item.consumer:<14} "
            f"{item.attempts:>5}  {error}"
        )
    return 0


async def _migrate(settings: Settings) -> int:
    # Opening the site's databases migrates each of them (every shard, the catalog).
    migrated: dict[str, list[str]] = {}
    async with open_shards(settings, migrated=migrated) as shards:
        labels = [db.primary.label for db in shards.everything()]
    for label in labels:
        applied = migrated[label]
        done = ", ".join(applied) if applied else "nothing, the schema is current"
        print(f"{label}: applied {done}")
    return 0


async def _migrate_blobs(settings: Settings) -> int:
    """Copy <data_dir>/blobs to the S3 bucket of the settings; run it again to resume."""
    if not settings.s3.bucket:
        print("picshare: blobs migrate --to s3 needs PICSHARE_S3_BUCKET", file=sys.stderr)
        return 2
    bars: dict[str, Callable[[int], None]] = {}

    def on_total(total: int) -> None:
        bars["bar"] = Progress().stage("blobs", total)

    async with open_s3(settings.s3) as target:
        try:
            await target.ping()
        except Exception as exc:
            print(
                f"picshare: the bucket {settings.s3.bucket} is not usable: {exc}", file=sys.stderr
            )
            return 1
        report = await migrate_blobs(
            local_store(settings),
            target,
            on_total=on_total,
            on_done=lambda done: bars["bar"](done),
        )
    print(
        f"copied {report.copied:,} blobs ({report.bytes_copied:,} bytes), "
        f"{report.skipped:,} already in s3://{settings.s3.bucket}"
    )
    return 0


async def _seed(settings: Settings, plan: SeedPlan) -> int:
    if plan.users < 2 or plan.photos < 1:
        print("picshare: seed needs at least 2 users and 1 photo", file=sys.stderr)
        return 2
    # Bulk statements (a recount over a million likes) outlast a request's timeout.
    async with (
        open_shards(settings, command_timeout=600) as shards,
        open_blob_store(settings) as blobs,
    ):
        report = await seed(shards, blobs, plan)
        # Seeded photos are written without events: indexed for search here.
        started = time.perf_counter()
        indexed = await SearchIndexer(db=shards).reindex(restart=True, progress=Progress().stage)
    print(
        f"seeded {report.users:,} users, {report.photos:,} photos, {report.follows:,} follows, "
        f"{report.likes:,} likes, {report.comments:,} comments in {report.seconds:.1f} s "
        f"(password of every seeded user: {SEED_PASSWORD}); indexed {indexed.photos:,} photos"
        f" for search in {time.perf_counter() - started:.1f} s"
    )
    return 0


async def _reindex(settings: Settings, *, restart: bool) -> int:
    """`run.py search reindex`: the search index filled from every photo,
    account and tag."""
    started = time.perf_counter()
    async with open_shards(settings, command_timeout=600) as shards:
        report = await SearchIndexer(db=shards).reindex(restart=restart, progress=Progress().stage)
    how = "resumed, " if report.resumed else ""
    print(
        f"indexed {report.photos:,} photos on {report.databases} database(s) for search, "
        f"{report.users:,} users, {report.tags:,} tags "
        f"({how}{time.perf_counter() - started:.1f} s)"
    )
    return 0


async def _list_jobs(settings: Settings, status: str | None, limit: int) -> int:
    jobs: list[JobRecord] = []
    async with open_shards(settings) as shards:
        for db in shards.physical:
            async with db.read(PRIMARY) as conn:
                jobs += await jobs_repo.list_jobs(conn, status=status, limit=limit)
    jobs = sorted(jobs, key=lambda job: job.id, reverse=True)[:limit]
    print(f"{'id':>20}  {'kind':<14} {'status':<8} {'tries':>5}  {'created':<19}  last error")
    for job in jobs:
        error = (job.last_error or "").splitlines()[0][:60] if job.last_error else ""
        print(
            f"{job.id:>20}  {job.kind:<14} {job.status:<8} {job.attempts:>2}/{job.max_attempts:<2}"
            f"  {job.created_at:%Y-%m-%d %H:%M:%S}  {error}"
        )
    return 0


async def _move(settings: Settings, logical: int, target: str) -> int:
    number = target.removeprefix("shard-")
    if not number.isdigit():
        print(f"picshare: TARGET is a database number (2) or label (shard-2), not {target!r}")
        return 2
    shown: dict[str, Callable[[int], None]] = {}
    done = 0

    def progress(what: str, rows: int) -> None:
        nonlocal done
        if what == "total":
            shown["bar"] = Progress().stage(f"logical {logical}", rows)
            return
        done += rows
        shown["bar"](done)

    async with open_shards(settings) as shards:
        try:
            report = await move(
                shards,
                logical,
                int(number) - 1,
                grace=3 * settings.database.shard_map_poll,
                progress=progress,
            )
        except MoveError as exc:
            print(f"picshare: {exc}", file=sys.stderr)
            return 2
    if report.resumed_from == "done":
        print(f"logical shard {logical} already lives on {report.target}")
        return 0
    print(
        f"moved logical shard {logical} from {report.source} to {report.target}: "
        f"{report.rows:,} rows in {report.seconds:.1f} s; its writes paused "
        f"{report.pause_seconds * 1000:.0f} ms"
        + (f" (resumed a move interrupted at {report.resumed_from})" if report.resumed_from else "")
    )
    return 0


async def _shards(settings: Settings) -> int:
    async with open_shards(settings) as shards:
        stats = await shard_stats(shards)
        print(
            f"router: {shards.map.router}, {len(shards.map.placement)} logical shards, "
            f"map version {shards.map.version}, catalog on {shards.catalog.primary.label}"
        )
        print(f"{'database':<16} {'logical':>7}  {'users':>9} {'photos':>9} {'likes':>10}  size")
        for row in stats:
            print(
                f"{row.label:<16} {len(row.logical):>7}  {row.rows['users']:>9,} "
                f"{row.rows['photos']:>9,} {row.rows['likes']:>10,}  "
                f"{row.size_bytes / 1e6:,.1f} MB   logical {ranges_text(row.logical)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
