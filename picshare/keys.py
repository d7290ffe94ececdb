"""Every typed key of application and request state, in one place."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from picshare.caching import CachedReads
from picshare.config import Settings
from picshare.events import EventBus
from picshare.health import HealthService
from picshare.idempotency import IdempotencyService
from picshare.jobs import JobRunner
from picshare.live import SocketHub
from picshare.media import MediaWorkers
from picshare.media_urls import MediaUrls
from picshare.metrics import Metrics
from picshare.notifications import NotificationService
from picshare.outbox import Outbox
from picshare.payments import PaymentService
from picshare.photos import PhotoService
from picshare.ratelimit import Decision, RateLimiter
from picshare.relay import EventRelay
from picshare.routing import RouteInfo, RouteTable
from picshare.search import SearchService
from picshare.social import SocialService
from picshare.users import UserService
from storage.blobs import BlobStore
from storage.records import UserRecord
from storage.shards import Shards

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
MEDIA_URLS = web.AppKey("media_urls", MediaUrls)
METRICS = web.AppKey("metrics", Metrics)
# The shared Redis client, or None when redis.url is empty (one process).
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
BUS = web.AppKey("bus", EventBus)
HUB = web.AppKey("hub", SocketHub)
SOCIAL = web.AppKey("social", SocialService)
NOTIFICATIONS = web.AppKey("notifications", NotificationService)
SEARCH = web.AppKey("search", SearchService)
PAYMENTS = web.AppKey("payments", PaymentService)
HEALTH = web.AppKey("health", HealthService)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyService)
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# What the middlewares need of each route, resolved once (handlers/route_info.py).
ROUTE_INFO: web.AppKey[RouteTable] = web.AppKey("route_info")

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
