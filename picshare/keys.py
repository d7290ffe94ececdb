"""Every typed key of application and request state, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from picshare.caching import CachedReads
from picshare.config import Settings
from picshare.events import EventBus
from picshare.gateway import Gateway
from picshare.health import HealthService
from picshare.idempotency import IdempotencyService
from picshare.internal_token import InternalTokens
from picshare.jobs import JobRunner
from picshare.live import SocketHub
from picshare.media import MediaWorkers
from picshare.media_urls import MediaUrls
from picshare.metrics import Metrics
from picshare.moderation import ModerationService
from picshare.notifications import NotificationService
from picshare.notify import Notifier
from picshare.outbox import Outbox
from picshare.payments import PaymentService
from picshare.photos import PhotoService
from picshare.ratelimit import Decision, RateLimiter
from picshare.relay import EventRelay
from picshare.routing import RouteInfo, RouteTable
from picshare.search import SearchService
from picshare.search_index import SearchIndexer
from picshare.social import SocialService
from picshare.system import SystemService
from picshare.users import UserService
from picshare.webhooks import WebhookService
from storage.blobs import BlobStore
from storage.records import UserRecord
from storage.shards import Shards

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
SECRET_KEY = web.AppKey("secret_key", bytes)
DATABASES = web.AppKey("databases", Shards)
BLOBS = web.AppKey("blobs", BlobStore)
MEDIA_WORKERS = web.AppKey("media_workers", MediaWorkers)
JOBS = web.AppKey("jobs", JobRunner)
# How domain events reach their consumers (picshare/relay.py), and where
# services write them (picshare/outbox.py).
RELAY: web.AppKey[EventRelay] = web.AppKey("relay")
OUTBOX = web.AppKey("outbox", Outbox)
CACHED_READS = web.AppKey("cached_reads", CachedReads)
USERS = web.AppKey("users", UserService)
PHOTOS = web.AppKey("photos", PhotoService)
MODERATION = web.AppKey("moderation", ModerationService)
MEDIA_URLS = web.AppKey("media_urls", MediaUrls)
METRICS = web.AppKey("metrics", Metrics)
# The shared Redis client, or None when redis.url is empty (one process).
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
BUS = web.AppKey("bus", EventBus)
NOTIFIER = web.AppKey("notifier", Notifier)
HUB = web.AppKey("hub", SocketHub)
SOCIAL = web.AppKey("social", SocialService)
NOTIFICATIONS = web.AppKey("notifications", NotificationService)
SEARCH = web.AppKey("search", SearchService)
SEARCH_INDEX = web.AppKey("search_index", SearchIndexer)
PAYMENTS = web.AppKey("payments", PaymentService)
HEALTH = web.AppKey("health", HealthService)
# What this process is: "web" (run.py serve, the default) or "worker" (run.py worker).
PROCESS_KIND = web.AppKey("process_kind", str)
SYSTEM = web.AppKey("system", SystemService)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyService)
WEBHOOKS = web.AppKey("webhooks", WebhookService)
# Users' webhooks are delivered with it (picshare/webhook_guard.py).
WEBHOOK_HTTP = web.AppKey("webhook_http", aiohttp.ClientSession)
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# What the middlewares need of each route, resolved once (handlers/route_info.py).
ROUTE_INFO: web.AppKey[RouteTable] = web.AppKey("route_info")
# The app's middlewares put around a handler (handlers/middlewares.py
# `layered`): what a route added after `create_app` (a test's) is given.
LAYER: web.AppKey[Callable[[Handler], Handler]] = web.AppKey("layer")

# Behind a gateway (server.internal_secret on a service): the verifier of
# its internal tokens, the only identity such a service believes.
INTERNAL_TOKENS = web.AppKey("internal_tokens", InternalTokens)
# The gateway's upstreams and client (picshare/gateway.py).
GATEWAY = web.AppKey("gateway", Gateway)

ROUTE = web.RequestKey("route", RouteInfo)
REQUEST_ID = web.RequestKey("request_id", str)
# The signed-in user: None when anonymous, absent on routes that read no
# credentials (set to None rather than left out: `request.get` of a missing
# key raises and catches a KeyError, and a read asks it three times).
# How they signed in ("bearer" or "session").
USER: web.RequestKey[UserRecord | None] = web.RequestKey("user")
AUTH_KIND = web.RequestKey("auth_kind", str)
# The bearer token or session id, kept to revoke it on logout.
CREDENTIAL = web.RequestKey("credential", str)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
# The tightest rate-limit decision taken for this request (for its headers).
RATELIMIT = web.RequestKey("ratelimit", Decision)
# True when a verified internal token came with the request: the gateway has
# applied rate limits and Idempotency-Key already, so this process does not.
PRECHECKED = web.RequestKey("prechecked", bool)
