"""`create_app(settings)`: the one place that builds and wires everything.

Each resource is one cleanup-context entry, opened with `async with` (or
its equivalent) and registered in dependency order, in one list, so shutdown
closes them in reverse: jobs stop before the pool they use closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TypeAlias

import aiohttp_jinja2
import aiojobs
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from handlers import gateway as gateway_http
from handlers import middlewares
from handlers.proxies import forwarded_middleware
from handlers.routes import Handler, Route, setup_routes, static_files
from handlers.static_files import StaticFiles
from handlers.template_filters import blurhash_color
from picshare import keys
from picshare.blob_stores import open_blob_store
from picshare.caching import CachedReads, CacheTtls
from picshare.comments import Comments
from picshare.config import Settings, SettingsError
from picshare.consumers import UnknownConsumer, counters, names_chosen, subscriptions
from picshare.database import open_shards
from picshare.events import EventBus, InProcessBus
from picshare.gateway import open_gateway
from picshare.health import HealthService
from picshare.idempotency import IdempotencyService
from picshare.internal_token import InternalTokens
from picshare.jobs import JobKind, JobRunner
from picshare.likes import Likes
from picshare.media import MediaWorkers
from picshare.media_urls import MediaUrls
from picshare.metrics import Metrics
from picshare.moderation import ModerationService
from picshare.notifications import NotificationService
from picshare.notify import Notifier
from picshare.outbox import Outbox
from picshare.outbox_retention import prune_forever
from picshare.payments import PaymentService
from picshare.photos import PhotoService
from picshare.process_registry import process_registry
from picshare.ratelimit import (
    FallbackLimiter,
    MemoryLimiter,
    Policies,
    RateLimiter,
    RedisLimiter,
)
from picshare.relay import EventRelay
from picshare.relay_amqp import AmqpRelay
from picshare.relay_inprocess import InProcessRelay
from picshare.routing import RouteTable
from picshare.search import SearchService
from picshare.search_index import SearchIndexer
from picshare.secret import load_secret_key
from picshare.services import PROFILES, SERVICES, Part, parts_for
from picshare.social import SocialService
from picshare.system import SystemService
from picshare.users import UserService
from picshare.webhook_guard import guarded_session
from picshare.webhooks import WebhookService
from storage.cache import Cache, MemoryCache, RedisCache
from storage.redis_bus import RedisBus
from storage.shards import Shards
from ws.hub import Hub

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Multipart uploads are streamed and limited by uploads.max_bytes; this caps
# only bodies read whole (JSON, urlencoded forms).
CLIENT_MAX_SIZE = 1024 * 1024

RETENTION_EVERY = 3600.0  # seconds between prunes of sent events (picshare/outbox_retention.py)

CleanupContext: TypeAlias = Callable[[web.Application], AsyncIterator[None]]


def create_app(settings: Settings, *, media_pool: Executor | None = None) -> web.Application:
    """Build the app. `media_pool` lets a caller (the tests) share one process
    pool between many apps; the app then neither starts nor stops it.

    `server.service` picks the process's role (picshare/services.py): the
    monolith, one service (its routes, consumers and resources only), or
    the gateway (`_gateway_app`)."""
    role = settings.server.service
    if role == "gateway":
        return _gateway_app(settings)
    profile = PROFILES[role]
    app, routes, env, chain = _bare_app(settings)
    app[keys.MEDIA_URLS] = MediaUrls(
        prefix=settings.media.url_prefix,
        secret=app[keys.SECRET_KEY],
        ttl=settings.media.signed_url_ttl,
        cdn_url=settings.media.cdn_url,
    )
    env.filters["blurhash_color"] = blurhash_color
    env.globals["static"] = _static_urls(app)
    if _behind_gateway(settings):
        app[keys.INTERNAL_TOKENS] = _internal_tokens(settings)
    if role != "all":
        app[keys.PROCESS_KIND] = role  # its name in the process registry (/system)
    setup_routes(app, routes, role=role, chain=chain)
    if media_pool is None and not profile.media:
        # This service renders no images: a thread stands in for the pool.
        media_pool = ThreadPoolExecutor(1, thread_name_prefix="media-unused")
    app.cleanup_ctx.extend(
        [
            _redis,
            _database,
            _ratelimit,
            _events_of(live=profile.live),
            _blobs,
            _media_workers(media_pool),
            _cached_reads,
            _webhook_http,
            _jobs,
            _services,
            _system,
            _start_jobs,
        ]
    )
    app.on_shutdown.append(_close_sockets)
    return app


def _bare_app(
    settings: Settings,
) -> tuple[web.Application, RouteTable, jinja2.Environment, list[Middleware]]:
    """What every role's app starts from: the settings, metrics, the route
    table to fill, the secret key, the templates, and the middleware chain,
    which `setup_routes` puts around each handler (the app itself has no
    middlewares: aiohttp would add a layer and build the chain per request)."""
    metrics = Metrics()
    routes: RouteTable = {}
    # The gateway streams bodies through; this caps only bodies read whole.
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.ROUTE_INFO] = routes
    app[keys.SECRET_KEY] = load_secret_key(settings)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    chain = _middlewares(settings, routes, metrics)

    def layer(handler: Handler) -> Handler:
        return middlewares.layered(handler, chain)

    app[keys.LAYER] = layer
    return app, routes, env, chain


def _middlewares(settings: Settings, routes: RouteTable, metrics: Metrics) -> list[Middleware]:
    """The chain, outermost first: the trusted-proxy layer when configured
    (it would do nothing otherwise), then the request layer, which runs
    each route's steps (handlers/middlewares.py)."""
    chain: list[Middleware] = []
    if settings.server.trusted_proxies:
        # First, so every later layer (error pages included) sees the client's
        # address and scheme on the one request object they all share.
        chain.append(forwarded_middleware(settings.server.trusted_proxies))
    chain.append(
        middlewares.request_middleware(
            routes,
            metrics,
            auth=settings.auth,
            internal=_internal_tokens(settings) if _behind_gateway(settings) else None,
            policies=(
                Policies.from_settings(settings.ratelimit) if settings.ratelimit.enabled else None
            ),
            wal_cookie_ttl=int(settings.database.read_your_writes_ttl),
        )
    )
    return chain


def _static_urls(app: web.Application, files: StaticFiles | None = None) -> Callable[[str], str]:
    """url_for with append_version hashes the file: do it once per name, not per render.
    `files`: a resource of its own to build them with (the gateway's router has none)."""
    cache: dict[str, str] = {}

    def static(name: str) -> str:
        if name not in cache:
            resource = files if files is not None else app.router["static"]
            cache[name] = str(resource.url_for(filename=name))
        return cache[name]

    return static


async def _database(app: web.Application) -> AsyncIterator[None]:
    """The storage routers, one per shard (storage/shards.py): one without sharding."""
    settings = app[keys.SETTINGS]
    async with open_shards(settings, redis=app[keys.REDIS]) as shards:
        app[keys.DATABASES] = shards
        if shards.single:
            yield
            return
        # A move (run.py shards move) changes the map in the catalog: every
        # process reads it again this often, and a move waits longer than that.
        watch = asyncio.create_task(_watch_map(shards, settings.database.shard_map_poll))
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


async def _watch_map(shards: Shards, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if await shards.reload_map():
                log.info("shard map changed: version %d", shards.map.version)
        except Exception as exc:  # the catalog away: keep the map we have
            log.warning("could not read the shard map: %s", exc)


async def _redis(app: web.Application) -> AsyncIterator[None]:
    """One Redis client (a connection pool) for cache, limits and events."""
    settings = app[keys.SETTINGS].redis
    if not settings.url:
        app[keys.REDIS] = None
        yield
        return
    client = Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        health_check_interval=30,
        # One quick retry, not redis-py's default backoff series: callers bound
        # their own waits (cache, limiter, bus) and must fail fast to the database.
        retry=Retry(NoBackoff(), 1),
    )
    app[keys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def _ratelimit(app: web.Application) -> AsyncIterator[None]:
    """Shared limits in Redis (falling back per policy while it is down), else in this process."""
    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
    local = MemoryLimiter(max_keys=settings.ratelimit.local_max_keys)
    redis = app[keys.REDIS]
    limiter: RateLimiter = local
    if redis is not None:
        limiter = FallbackLimiter(
            primary=RedisLimiter(redis, timeout=settings.redis.timeout),
            local=local,
            on_error=lambda _exc: metrics.ratelimit_errors.inc(),
        )
    app[keys.RATE_LIMITER] = limiter
    yield


def _events_of(*, live: bool) -> CleanupContext:
    """The bus (Redis pub/sub across processes, else in-process) and this
    process's hub. Only a process serving sockets (`live`) listens to the
    bus; the others publish on it."""

    async def _events(app: web.Application) -> AsyncIterator[None]:
        metrics = app[keys.METRICS]
        hub = Hub(
            on_count=metrics.ws_connections.set,
            on_sent=metrics.ws_events.inc,
            on_slow=metrics.ws_slow_disconnects.inc,
        )
        client = app[keys.REDIS]
        bus: EventBus
        listening = False
        if client is not None:
            redis_bus = RedisBus(client)
            if live:
                redis_bus.subscribe(hub.deliver)
                await redis_bus.start()
                listening = True
            bus = redis_bus
        else:
            bus = InProcessBus()
            bus.subscribe(hub.deliver)
        app[keys.HUB] = hub
        app[keys.BUS] = bus
        try:
            yield
        finally:
            if listening and isinstance(bus, RedisBus):
                await bus.close()

    return _events


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown (before cleanup): sockets get 1001 GOING_AWAY, not a dropped TCP."""
    if keys.HUB in app:
        await app[keys.HUB].close_all()


async def _blobs(app: web.Application) -> AsyncIterator[None]:
    """Local files or an S3 bucket (its client, and its janitor task, closed after)."""
    async with open_blob_store(app[keys.SETTINGS], janitor=True) as store:
        app[keys.BLOBS] = store
        yield


def _media_workers(shared: Executor | None) -> CleanupContext:
    """The image workers: a process pool of their own, or `shared` (which the
    app does not stop; a pool that replaces a broken one is the app's own)."""

    async def media_workers(app: web.Application) -> AsyncIterator[None]:
        if shared is not None:
            workers = MediaWorkers(shared, owned=False)
        else:
            workers = MediaWorkers(workers=app[keys.SETTINGS].media.workers)
        app[keys.MEDIA_WORKERS] = workers
        try:
            yield
        finally:
            await workers.close()

    return media_workers


def _cache(app: web.Application) -> Cache:
    """Redis when configured (shared by every process), else in this process."""
    settings = app[keys.SETTINGS]
    client = app[keys.REDIS]
    if client is not None:
        return RedisCache(
            client, name="picshare", metrics=app[keys.METRICS], timeout=settings.redis.timeout
        )
    return MemoryCache(
        name="picshare", max_entries=settings.cache.max_entries, metrics=app[keys.METRICS]
    )


async def _cached_reads(app: web.Application) -> AsyncIterator[None]:
    """The cache-aside reads the services share (picshare/caching.py)."""
    settings = app[keys.SETTINGS].cache
    app[keys.CACHED_READS] = CachedReads(
        db=app[keys.DATABASES],
        cache=_cache(app),
        ttl=CacheTtls(
            photo=settings.photo_ttl,
            profile=settings.profile_ttl,
            feed=settings.feed_ttl,
            public=settings.public_ttl,
        ),
    )
    yield


async def _webhook_http(app: web.Application) -> AsyncIterator[None]:
    """The client that delivers users' webhooks, through the SSRF guard. Its
    own entry before the jobs: closed after them, so no delivery finds it closed."""
    settings = app[keys.SETTINGS].webhooks
    async with guarded_session(allow_loopback=settings.allow_loopback) as session:
        app[keys.WEBHOOK_HTTP] = session
        yield


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """The job runner on its aiojobs scheduler; closing the scheduler stops the jobs.
    Services register their kinds next; `_start_jobs` starts it after them."""
    settings = app[keys.SETTINGS]
    scheduler = aiojobs.Scheduler(limit=None, close_timeout=settings.server.shutdown_timeout)
    runner = JobRunner(
        db=app[keys.DATABASES], settings=settings.jobs, scheduler=scheduler, kinds={}
    )
    app[keys.JOBS] = runner
    relay = _relay(app, runner)
    app[keys.RELAY] = relay
    app[keys.OUTBOX] = Outbox(relay)
    try:
        yield
    finally:
        await scheduler.close()


def _relay(app: web.Application, runner: JobRunner) -> EventRelay:
    """The jobs engine in this process, or RabbitMQ with `events.amqp_url`."""
    settings = app[keys.SETTINGS]
    site = subscriptions(moderated=bool(settings.moderation.url))
    if not settings.events.amqp_url:
        if settings.events.consumers.strip().lower() not in ("", "all"):
            log.warning(
                "events.consumers=%s has no effect without events.amqp_url: every process"
                " with jobs runs every consumer",
                settings.events.consumers,
            )
        return InProcessRelay(db=app[keys.DATABASES], jobs=runner, subscribed=site)
    return AmqpRelay(
        db=app[keys.DATABASES],
        settings=settings.events,
        names=names_chosen("all"),
        run_here=_consumers_here(settings),
        on_backlog=app[keys.METRICS].outbox_backlog.set,
        subscribed=site,
    )


@contextlib.asynccontextmanager
async def relay_for_commands(settings: Settings, db: Shards) -> AsyncIterator[EventRelay]:
    """A relay for `run.py events` (dead letters), not started: it neither
    relays nor consumes."""
    if settings.events.amqp_url:
        yield AmqpRelay(db=db, settings=settings.events, names=names_chosen("all"), run_here=[])
        return
    scheduler = aiojobs.Scheduler(limit=None)
    try:
        yield InProcessRelay(
            db=db, jobs=JobRunner(db=db, settings=settings.jobs, scheduler=scheduler, kinds={})
        )
    finally:
        await scheduler.close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The domain services: plain objects over the resources above (the
    moderation service's HTTP client is the one thing to close).

    Only those this process's role needs (picshare/services.py `parts_for`:
    its routes' and its consumers'); of those, it runs the job kinds of its
    profile's `jobs` and only expects the others (enqueued here, run by the
    service they belong to); it registers only the consumers it runs. The
    monolith builds, runs and registers everything."""
    settings = app[keys.SETTINGS]
    role = settings.server.service
    here = _consumers_here(settings)
    parts = parts_for(role, here)
    runs = PROFILES[role].jobs
    db = app[keys.DATABASES]
    cached = app[keys.CACHED_READS]
    runner = app[keys.JOBS]
    events = app[keys.OUTBOX]

    def kinds(part: Part, of: dict[str, JobKind]) -> None:
        if part in runs:
            runner.register(of)
        else:
            runner.expect(of)

    notifier = Notifier(
        db=db,
        bus=app[keys.BUS],
        jobs=runner,
        events=events if _notified_by_service(settings) else None,
    )
    kinds("notifications", notifier.job_kinds())
    app[keys.NOTIFIER] = notifier
    # Likes and comments belong to the photos they are on (their counts, the
    # owner's notification): their jobs run wherever social jobs do.
    likes = Likes(db=db, notifier=notifier, cached=cached, jobs=runner, events=events)
    kinds("social", likes.job_kinds())
    comments = Comments(db=db, notifier=notifier, cached=cached, jobs=runner, events=events)
    kinds("social", comments.job_kinds())
    users = UserService(db=db, auth=settings.auth, cached=cached, jobs=runner, events=events)
    kinds("users", users.job_kinds())
    app[keys.USERS] = users
    consumers = []
    moderation: ModerationService | None = None
    if "photos" in parts:
        photos = PhotoService(
            db=db,
            blobs=app[keys.BLOBS],
            media=app[keys.MEDIA_WORKERS],
            jobs=runner,
            uploads=settings.uploads,
            renditions=settings.media,
            feed=settings.feed,
            notifier=notifier,
            likes=likes,
            comments=comments,
            cached=cached,
            events=events,
            moderated=bool(settings.moderation.url),
        )
        kinds("photos", photos.job_kinds())
        app[keys.PHOTOS] = photos
        consumers += [*photos.consumers(), notifier.consumer(photos.on_ready)]
        if "moderation" in parts:
            moderation = ModerationService(settings=settings.moderation, photos=photos)
            app[keys.MODERATION] = moderation
            consumers += moderation.consumers()
    consumers.append(counters(db))
    if "social" in parts:
        social = SocialService(
            db=db,
            notifier=notifier,
            likes=likes,
            comments=comments,
            cached=cached,
            jobs=runner,
            events=events,
        )
        kinds("social", social.job_kinds())
        app[keys.SOCIAL] = social
    if "notifications" in parts:
        app[keys.NOTIFICATIONS] = NotificationService(db=db)
    if "search" in parts:
        app[keys.SEARCH] = SearchService(db=db, likes=likes)
        app[keys.SEARCH_INDEX] = SearchIndexer(db=db)
        consumers.append(app[keys.SEARCH_INDEX].consumer())
    if "payments" in parts:
        payments = PaymentService(
            db=db,
            notifier=notifier,
            jobs=runner,
            settings=settings.payments,
            events=events,
            on_retry=app[keys.METRICS].payment_retries.inc,
        )
        kinds("payments", payments.job_kinds())
        app[keys.PAYMENTS] = payments
    if "webhooks" in parts:
        webhooks = WebhookService(
            db=db, jobs=runner, settings=settings.webhooks, http=app[keys.WEBHOOK_HTTP]
        )
        kinds("webhooks", webhooks.job_kinds())
        app[keys.WEBHOOKS] = webhooks
        consumers.append(webhooks.consumer())
    relay = app[keys.RELAY]
    relay.register([c for c in consumers if c.name in here])
    app[keys.HEALTH] = HealthService(
        db=db,
        blobs=app[keys.BLOBS],
        events=relay.state if isinstance(relay, AmqpRelay) else None,
    )
    app[keys.IDEMPOTENCY] = IdempotencyService(db=db, settings=settings.idempotency)
    try:
        yield
    finally:
        if moderation is not None:
            await moderation.close()  # its HTTP client, after the jobs that use it stopped


def _consumers_here(settings: Settings) -> list[str]:
    """The consumers this process runs: `events.consumers` with a broker,
    else (or when it says "all") its role's (every one, for the monolith)."""
    chosen = settings.events.consumers if settings.events.amqp_url else "all"
    if chosen.strip().lower() in ("", "all"):
        chosen = PROFILES[settings.server.service].consumers
    try:
        return names_chosen(chosen)
    except UnknownConsumer as exc:
        raise SettingsError(str(exc)) from None


def _notified_by_service(settings: Settings) -> bool:
    """Whether the notifications service writes the notifications (from
    events, picshare/notify.py): a site of services with a broker."""
    return bool(settings.events.amqp_url) and settings.server.service != "all"


async def _system(app: web.Application) -> AsyncIterator[None]:
    """This process in the site's process registry (the `/system` page)."""
    settings = app[keys.SETTINGS]
    events = settings.events
    system = SystemService(
        registry=process_registry(app[keys.REDIS], timeout=settings.redis.timeout),
        health=app.get(keys.HEALTH),
        hub=app.get(keys.HUB),
        metrics=app[keys.METRICS],
        kind=app.get(keys.PROCESS_KIND, "web"),
        listen=f"{settings.server.host}:{settings.server.port}",
        consumers=events.consumers if events.amqp_url else "all (as jobs)",
    )
    app[keys.SYSTEM] = system
    beating = asyncio.create_task(system.heartbeat())
    try:
        yield
    finally:
        system.stop()
        await beating


async def _start_jobs(app: web.Application) -> AsyncIterator[None]:
    """Last: jobs run once every service has registered its kinds."""
    if app[keys.SETTINGS].jobs.enabled:
        await app[keys.JOBS].start()
    relay = app[keys.RELAY]
    await relay.start()
    settings = app[keys.SETTINGS].events
    retention = asyncio.create_task(
        prune_forever(
            app[keys.DATABASES],
            retention_seconds=settings.retention_days * 86400,
            every=RETENTION_EVERY,
        )
    )
    try:
        yield
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        await relay.close()


def _behind_gateway(settings: Settings) -> bool:
    """A service (not the monolith) given the gateway's secret believes only its tokens."""
    return (
        settings.server.service in PROFILES
        and settings.server.service != "all"
        and bool(settings.server.internal_secret)
    )


def _internal_tokens(settings: Settings) -> InternalTokens:
    return InternalTokens(settings.server.internal_secret, ttl=settings.gateway.token_ttl)


def _gateway_app(settings: Settings) -> web.Application:
    """`serve --service gateway`: the public front (handlers/gateway.py).

    The same middlewares as the monolith (request id, identity, rate limits,
    Idempotency-Key) over a router filled from the same route table, each
    route a proxy to its service; the probes are the gateway's own. Its
    resources: Redis (shared limits), the database (tokens and sessions,
    idempotency keys), and the upstreams' client."""
    app, routes, env, chain = _bare_app(settings)
    env.globals["static"] = _static_urls(app, static_files())
    proxies = {name: gateway_http.proxy_to(name) for name in SERVICES}
    own = {"readyz": gateway_http.readyz, "metrics": gateway_http.metrics}

    def handler_of(route: Route) -> Handler:
        if route.service == "each":
            return own.get(route.name, route.handler)
        return proxies[route.service]

    setup_routes(
        app, routes, role="gateway", handler_of=handler_of, static=proxies["web"], chain=chain
    )
    app[keys.PROCESS_KIND] = "gateway"
    app.cleanup_ctx.extend(
        [_redis, _database, _ratelimit, _cached_reads, _gateway_services, _system]
    )
    return app


async def _gateway_services(app: web.Application) -> AsyncIterator[None]:
    """What the gateway's middlewares use: users (who is asking), idempotency
    keys, and the upstreams. Its job runner is never started: the services
    run the jobs."""
    settings = app[keys.SETTINGS]
    db = app[keys.DATABASES]
    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(db=db, settings=settings.jobs, scheduler=scheduler, kinds={})
    app[keys.USERS] = UserService(
        db=db, auth=settings.auth, cached=app[keys.CACHED_READS], jobs=runner
    )
    app[keys.IDEMPOTENCY] = IdempotencyService(db=db, settings=settings.idempotency)
    try:
        async with open_gateway(settings) as gateway:
            app[keys.GATEWAY] = gateway
            yield
    finally:
        await scheduler.close()
