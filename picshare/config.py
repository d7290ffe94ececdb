"""Settings: frozen, typed dataclasses read from config/*.toml, then PICSHARE_* variables.

A wrong value stops the start with a `SettingsError` naming the setting, so an
operator never runs with a value the code silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picshare.services import (
    ROLES,
    SERVICES,
    UpstreamError,
    check_upstream_url,
    parse_pairs,
)
from storage.table_groups import GROUPS, PHOTOS, SEPARABLE, WITH_PHOTOS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class SettingsError(ValueError):
    """A setting has a wrong value; the message names it."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    secret_key: str = ""
    trusted_proxies: tuple[str, ...] = ()
    shutdown_timeout: float = 10.0
    access_log: bool = True
    # "text" (the line `logging` used to write) or "json" (one object per
    # line, with the request id: for log collectors).
    access_log_format: str = "text"
    # Seconds a client has to send a request's head (from its first byte, or
    # from connecting), and its body (from the end of the head); uploads have
    # their own bound, uploads.read_timeout. Slower clients are cut off.
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    # TLS terminated by PicShare itself (`serve --certfile F --keyfile F`):
    # PEM files; both or neither.
    certfile: str = ""
    keyfile: str = ""
    # Full PicShare processes on one port (`serve --workers N`), SO_REUSEPORT
    # under a small supervisor (picshare/supervisor.py); above 1 needs Redis.
    workers: int = 1
    # Usernames that may see the /system page from anywhere (anyone may from
    # this machine, not through a proxy).
    admins: tuple[str, ...] = ()
    # Which part of PicShare this process is (`serve --service`,
    # picshare/services.py): all (the monolith), auth, photos,
    # notifications, search, web, or gateway.
    service: str = "all"
    # The secret the gateway signs its internal tokens with and the services
    # verify them with (picshare/internal_token.py). Set on a service, the
    # service believes only that token for identity (behind a gateway).
    internal_secret: str = ""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    # `--upstream NAME=URL`, one per service (several names may share a URL).
    upstreams: tuple[str, ...] = ()
    # Seconds an upstream has to start its answer (else 504), and per-name
    # overrides ("search=2").
    timeout: float = 30.0
    timeouts: tuple[str, ...] = ()
    connect_timeout: float = 2.0
    # The circuit breaker per upstream: open after this many failures in a
    # row (refused, timed out), half-open after the cooldown (seconds).
    breaker_failures: int = 5
    breaker_cooldown: float = 10.0
    # Seconds an internal token is good for.
    token_ttl: float = 30.0


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = ""
    pool_min: int = 1
    pool_max: int = 10
    command_timeout: float = 10.0
    connect_timeout: float = 10.0
    shard_id: int = 1
    # Streaming replicas of `url`, in order: "replica-1", "replica-2"...
    replicas: tuple[str, ...] = ()
    # With no `url`: how many streaming replicas of the embedded database to
    # run beside it (`run.py serve --replicas N`), in <data_dir>/pg-replica-N.
    embedded_replicas: int = 0
    replica_policy: str = "round_robin"
    # A replica further behind than this (seconds) serves no reads until it catches up.
    max_replica_lag: float = 5.0
    # How often each database's WAL position is polled (its health task).
    replica_poll_interval: float = 0.1
    # How long a user's last-write position is kept for read-your-writes.
    read_your_writes_ttl: float = 60.0
    # The physical shard databases, in order (PICSHARE_SHARDS); empty: one
    # database, `url` (or the embedded one). With shards, `url` (when set) is
    # the catalog: the shard map, the user directory, payments.
    shards: tuple[str, ...] = ()
    # Entry i: shard i's streaming replicas, space-separated DSNs.
    shard_replicas: tuple[str, ...] = ()
    # With no url and no shards: how many embedded clusters to shard across
    # (`run.py serve --shards M`): shard 1 in <data_dir>/pg, shard N in <data_dir>/shard-N/pg.
    embedded_shards: int = 0
    # `range` (usernames by first letter) or `hash` (logical shards).
    shard_router: str = "hash"
    # The range router: the first letter of each range after the first
    # (empty: a-z shared evenly; two shards: ["n"], a-m and n-z).
    shard_ranges: tuple[str, ...] = ()
    # The hash router: how many logical shards (at most 8192, the ID's 13 bits).
    logical_shards: int = 1024
    # Seconds a read across shards waits for each; a later one is left out.
    shard_budget: float = 2.0
    # Seconds between each process's reads of the shard map (a move waits 3x this).
    shard_map_poll: float = 1.0
    # Table groups in databases of their own (PICSHARE_DATABASE_GROUP_<GROUP>_URL;
    # storage/table_groups.py); empty: the group lives with the rest.
    group_users_url: str = ""
    group_photos_url: str = ""
    group_likes_url: str = ""
    group_comments_url: str = ""
    group_notifications_url: str = ""
    group_payments_url: str = ""
    group_search_url: str = ""
    group_jobs_url: str = ""

    def group_urls(self) -> dict[str, str]:
        """The groups given a database of their own, with its URL."""
        urls = {g: getattr(self, f"group_{g}_url") for g in GROUPS}
        found = {g: url for g, url in urls.items() if url}
        if PHOTOS in found:
            for group in WITH_PHOTOS:
                found.setdefault(group, found[PHOTOS])
        return found


@dataclass(frozen=True, slots=True)
class UploadSettings:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 89_478_485
    max_caption_chars: int = 2200
    max_tags: int = 30
    max_tag_chars: int = 64
    chunk_bytes: int = 256 * 1024
    read_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class MediaSettings:
    workers: int = 0
    jpeg_quality: int = 85
    large_width: int = 1080
    medium_width: int = 640
    thumb_size: int = 150
    url_prefix: str = "/media"
    signed_url_ttl: int = 3600
    # PICSHARE_MEDIA_CDN_URL: public photos' URLs point there (it fetches
    # from the bucket, or from url_prefix here); empty: served by PicShare.
    cdn_url: str = ""


@dataclass(frozen=True, slots=True)
class BlobSettings:
    # PICSHARE_BLOBS_BACKEND: "local" (files under <data_dir>/blobs) or "s3".
    backend: str = "local"


@dataclass(frozen=True, slots=True)
class S3Settings:
    # PICSHARE_S3_BUCKET, PICSHARE_S3_ENDPOINT_URL (empty: AWS). Credentials
    # and region: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
    bucket: str = ""
    endpoint_url: str = ""
    # Uploads go up in parts of this size (S3: at least 5 MiB), this many at
    # once: an upload holds about (2 x parts_in_flight + 1) x part_size in
    # memory at the peak, whatever its size (README, "Blobs on S3").
    part_size: int = 5 * 1024 * 1024
    parts_in_flight: int = 2
    # Seconds; every S3 call has these bounds.
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    # Tries per S3 call (2: one retry, after a short backoff; 1: none).
    max_attempts: int = 2


@dataclass(frozen=True, slots=True)
class JobSettings:
    enabled: bool = True
    concurrency: int = 2
    poll_interval: float = 1.0
    lease_seconds: int = 30
    max_attempts: int = 5
    backoff_base: float = 2.0
    backoff_max: float = 300.0


@dataclass(frozen=True, slots=True)
class EventSettings:
    # Empty: events go to their consumers through the durable jobs engine in
    # this process; an amqp:// URL: through RabbitMQ (picshare/relay_amqp.py).
    amqp_url: str = ""
    # The topic exchange; its queues are named `<exchange>.<consumer>`.
    exchange: str = "picshare.events"
    # The consumers this process runs (RabbitMQ only): all, none, or names.
    consumers: str = "all"
    # Seconds between outbox scans when nothing woke the relay.
    relay_interval: float = 1.0
    # Deliveries of an event to a consumer before it is dead-lettered.
    max_attempts: int = 5
    # Retry n waits retry_base * 2**(n-1) seconds, at most retry_max.
    retry_base: float = 1.0
    retry_max: float = 300.0
    # Seconds for each broker call (connect, publish with its confirm).
    timeout: float = 5.0
    # Messages a consumer of this process holds unacknowledged at once.
    prefetch: int = 4
    # Sent events and consumers' records are kept this many days, checked hourly.
    retention_days: float = 7.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    # Lets user webhooks reach 127.0.0.0/8 and ::1 (tests, local receivers);
    # private, link-local and multicast addresses stay refused.
    allow_loopback: bool = False
    # Seconds for one delivery attempt (connect, send, answer).
    timeout: float = 10.0
    # Standard Webhooks' retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    # 10 h after the first attempt) is multiplied by this: tests shorten it.
    retry_scale: float = 1.0
    # Endpoints one user may register, and deliveries kept per endpoint.
    max_per_user: int = 20
    log_keep: int = 500


@dataclass(frozen=True, slots=True)
class ModerationSettings:
    # Empty: photos become ready with no moderation. The operator's own
    # service, so it may be on loopback or a private network.
    url: str = ""
    # whsec_...: signs deliveries to it (Standard Webhooks).
    secret: str = ""
    # It calls back POST /api/v1/moderation/{photo_id} with this bearer token.
    token: str = ""
    # Seconds for one delivery attempt.
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    session_cookie: str = "picshare_session"
    session_days: int = 30
    token_days: int = 365
    password_min: int = 8
    password_max: int = 256


@dataclass(frozen=True, slots=True)
class RedisSettings:
    # Empty: cache, rate limits and live events stay in this process.
    url: str = ""
    # Seconds; every Redis call has a timeout.
    timeout: float = 0.5


@dataclass(frozen=True, slots=True)
class WsSettings:
    # Seconds between pings; a peer silent for twice that is dropped.
    heartbeat: float = 30.0
    # Events waiting for one socket; past this it is a slow consumer and closed.
    send_queue: int = 256
    # At most this many missed notifications replayed on `?since=`.
    replay_limit: int = 200
    # Origins allowed for cookie-authenticated sockets besides the site itself.
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CacheSettings:
    # Seconds (about: the cache adds jitter) for photo details, profiles and
    # the first feed page; each is also invalidated by the writes that change it.
    photo_ttl: float = 60.0
    profile_ttl: float = 60.0
    feed_ttl: float = 15.0
    # The first page of newest public photos, for signed-out viewers: new and
    # deleted photos show at once, like and comment counts within this.
    public_ttl: float = 5.0
    # In-process cache entries (when Redis is not configured).
    max_entries: int = 50_000


@dataclass(frozen=True, slots=True)
class FeedSettings:
    # Viewers following at least this many accounts get the newest-first plan.
    dense_following: int = 300


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    # The one currency wallets hold; amounts are integer minor units (cents).
    currency: str = "USD"
    # The stand-in payment provider accepts at most this much per top-up.
    max_topup_cents: int = 50_000
    max_tip_cents: int = 10_000
    # Serializable transactions that lose a conflict are run again, at most
    # this many times in all, after a short random pause that doubles each time.
    max_attempts: int = 10
    retry_base_delay: float = 0.002


@dataclass(frozen=True, slots=True)
class PaginationSettings:
    default_limit: int = 20
    max_limit: int = 100


@dataclass(frozen=True, slots=True)
class GraphQLSettings:
    # An operation deeper than this many fields is refused (QUERY_TOO_DEEP).
    max_depth: int = 10
    # An operation that may return more nodes than this is refused
    # (QUERY_TOO_COSTLY); each connection multiplies what is below it by `first`.
    max_cost: int = 5000
    # The rate limiter counts one request per this much cost (a feed page with
    # comments is one or two requests' worth).
    cost_per_hit: int = 250
    # Query documents kept parsed, validated and compiled per process.
    document_cache: int = 256


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    # Seconds a key and its stored answer are kept (the draft asks for 24 h).
    ttl: int = 86400
    # Seconds an in-flight claim holds without a heartbeat: a claim left by a
    # crashed process is taken over by a retry after this long.
    lease: int = 60
    # Answers with a larger body are not stored (the claim is released).
    max_body: int = 1024 * 1024
    # Seconds between sweeps of expired keys (each process, on a claim).
    sweep_interval: float = 300.0


# --- Rate limits (picshare/ratelimit, handlers/ratelimit.py) -----------------
RATE_POLICIES = ("uploads", "login", "writes", "reads")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh]?)\s*$")
_RATE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    enabled: bool = True
    # "<quota>/<window>": that many requests per window ("60s", "1m", "1h"; bare
    # numbers are seconds), as a burst of `quota` and then one per window/quota.
    uploads: str = "10/60s"  # per user (per client IP when anonymous)
    login: str = "5/60s"  # per client IP, and per username tried
    writes: str = "60/60s"
    reads: str = "600/60s"
    # Policies that allow requests while Redis is unreachable; the others are
    # then limited by this process alone.
    fail_open: tuple[str, ...] = ("reads",)
    # Keys the in-process limiter keeps at most (one per client and policy).
    local_max_keys: int = 100_000


def parse_rate(text: str) -> tuple[int, int] | None:
    """'10/60s' -> (10, 60): a quota and a window in seconds; None if malformed."""
    match = _RATE.match(text)
    if match is None:
        return None
    quota, count, unit = match.groups()
    return int(quota), int(count or "1") * _RATE_UNITS[unit]


def _ratelimit_checks(s: RateLimitSettings) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    for name in RATE_POLICIES:
        text = getattr(s, name)
        rate = parse_rate(text)
        checks.append(
            (
                rate is not None,
                f"ratelimit.{name} must be '<quota>/<window>' like '60/60s' or '5/1m',"
                f" not {text!r}",
            )
        )
        if rate is not None:
            quota, window = rate
            checks.append((1 <= window <= 86400, f"ratelimit.{name}: the window must be 1 s-1 day"))
            checks.append(
                (1 <= quota <= 1_000_000, f"ratelimit.{name}: the quota must be 1-1000000")
            )
    for name in s.fail_open:
        checks.append(
            (
                name in RATE_POLICIES,
                f"ratelimit.fail_open: {name!r} is not a policy ({', '.join(RATE_POLICIES)})",
            )
        )
    checks.append((s.local_max_keys >= 1000, "ratelimit.local_max_keys must be at least 1000"))
    return checks


# --- end of rate limits ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    blobs: BlobSettings = field(default_factory=BlobSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    jobs: JobSettings = field(default_factory=JobSettings)
    events: EventSettings = field(default_factory=EventSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    pagination: PaginationSettings = field(default_factory=PaginationSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    ws: WsSettings = field(default_factory=WsSettings)
    graphql: GraphQLSettings = field(default_factory=GraphQLSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir).resolve()

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some values of some sections changed, validated like a load."""
        raw = _as_raw(self)
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        return _build(raw)


# Short names operators already know, mapped to their section and key.
ALIASES: dict[str, tuple[str, str]] = {
    "PICSHARE_DATABASE_URL": ("database", "url"),
    "PICSHARE_SHARDS": ("database", "shards"),
    "PICSHARE_SHARD_ROUTER": ("database", "shard_router"),
    "PICSHARE_REDIS_URL": ("redis", "url"),
    "PICSHARE_AMQP_URL": ("events", "amqp_url"),
    "PICSHARE_DATA_DIR": ("server", "data_dir"),
    "PICSHARE_HOST": ("server", "host"),
    "PICSHARE_PORT": ("server", "port"),
    "PICSHARE_SECRET_KEY": ("server", "secret_key"),
    "PICSHARE_MAX_UPLOAD_BYTES": ("uploads", "max_bytes"),
}


def load_settings(
    files: list[Path] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Defaults, then each TOML file in order, then the environment, then `overrides`."""
    env = os.environ if env is None else env
    if files is None:
        files = [CONFIG_DIR / "default.toml"]
        extra = env.get("PICSHARE_CONFIG")
        if extra:
            files.append(Path(extra))
    raw: dict[str, dict[str, Any]] = {}
    for path in files:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
        for section, values in data.items():
            if not isinstance(values, dict):
                raise SettingsError(f"{path}: [{section}] must be a table")
            raw.setdefault(section, {}).update(values)
    _apply_env(raw, env)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return _build(raw)


def _section_types() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _apply_env(raw: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    sections = _section_types()
    for name, value in env.items():
        if not name.startswith("PICSHARE_"):
            continue
        if name in ALIASES:
            section, key = ALIASES[name]
        else:
            rest = name.removeprefix("PICSHARE_").lower()
            section, _, key = rest.partition("_")
            if section not in sections or key not in _field_names(sections[section]):
                continue  # other PICSHARE_* variables (test harness, CLI) are not settings
        raw.setdefault(section, {})[key] = value


def _field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build(raw: Mapping[str, Mapping[str, Any]]) -> Settings:
    sections = _section_types()
    built: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in sections:
            raise SettingsError(f"unknown settings section [{section}]")
        cls = sections[section]
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in hints:
                raise SettingsError(f"unknown setting {section}.{key}")
            kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
        built[section] = cls(**kwargs)
    if "database" in built:
        built["database"] = _users_database(built["database"])
    settings = Settings(**built)
    _validate(settings)
    return settings


def _coerce(name: str, typ: Any, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or say which setting is wrong."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if typ is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
        origin = typing.get_origin(typ)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        if isinstance(typ, types.UnionType):
            return value
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name} has a wrong value: {value!r}") from exc
    raise SettingsError(f"setting {name} has an unsupported type")


def _users_database(db: DatabaseSettings) -> DatabaseSettings:
    """USERS' own URL (CONTRACT.md names it) is `url` by another name.

    The database `url` names is where USERS lives (users, tokens, follows,
    the catalog), every group not given a database of its own beside it: so
    with every other group apart, it holds USERS alone. Given only
    `group_users_url`, that is `url`; given both, they must agree (two
    different answers to "where do the users live?" are refused); with
    shards, the users live on them.
    """
    users = db.group_users_url
    if not users:
        return db
    if db.shards or db.embedded_shards > 1:
        raise SettingsError(
            "database.group_users_url (PICSHARE_DATABASE_GROUP_USERS_URL) cannot be given"
            " on a sharded site: users live on their shards (PICSHARE_SHARDS)"
        )
    if db.url and db.url != users:
        raise SettingsError(
            "database.group_users_url (PICSHARE_DATABASE_GROUP_USERS_URL) and database.url"
            " (PICSHARE_DATABASE_URL) name different databases: the users live in"
            " database.url, with every group not given its own; give one of them"
        )
    return dataclasses.replace(db, url=users, group_users_url="")


def _validate(s: Settings) -> None:
    groups = s.database.group_urls()
    not_yet = sorted(set(groups) - SEPARABLE)
    checks: list[tuple[bool, str]] = [
        (
            s.server.access_log_format in ("text", "json"),
            "server.access_log_format must be text or json",
        ),
        (
            all(u.startswith(("postgres://", "postgresql://")) for u in groups.values()),
            "database.group_<group>_url (PICSHARE_DATABASE_GROUP_<GROUP>_URL) must be"
            " postgresql:// URLs",
        ),
        (
            not not_yet,
            f"table group {', '.join(g.upper() for g in not_yet)} cannot have a database of"
            " its own (JOBS has no table: every database keeps its own jobs, enqueued in"
            " the transaction they follow from); groups that can: "
            + ", ".join(sorted(g.upper() for g in SEPARABLE)),
        ),
        (
            PHOTOS not in groups or not (s.database.shards or s.database.embedded_shards > 1),
            "table group PHOTOS cannot have a database of its own on a sharded site yet"
            " (photos and their owners share the owner's shard, and shard moves carry both);"
            " give database.group_photos_url on a site without shards",
        ),
        (0 < s.server.port < 65536, "server.port must be between 1 and 65535"),
        (s.server.header_timeout > 0, "server.header_timeout must be positive"),
        (s.server.body_timeout > 0, "server.body_timeout must be positive"),
        (s.database.pool_min >= 1, "database.pool_min must be at least 1"),
        (s.database.pool_max >= s.database.pool_min, "database.pool_max must be >= pool_min"),
        (s.database.command_timeout > 0, "database.command_timeout must be positive"),
        (
            s.database.replica_policy in ("round_robin", "least_conn", "hash"),
            "database.replica_policy must be round_robin, least_conn or hash",
        ),
        (s.database.max_replica_lag >= 0, "database.max_replica_lag must be >= 0"),
        (s.database.replica_poll_interval > 0, "database.replica_poll_interval must be positive"),
        (
            s.database.read_your_writes_ttl > s.database.max_replica_lag,
            # A mark must outlive the lag a replica may have and still serve.
            "database.read_your_writes_ttl must be longer than database.max_replica_lag",
        ),
        (
            all(r.startswith(("postgres://", "postgresql://")) for r in s.database.replicas),
            "database.replicas must be postgresql:// URLs",
        ),
        (
            0 <= s.database.embedded_replicas <= 8,
            "database.embedded_replicas (serve --replicas) must be between 0 and 8",
        ),
        (
            s.database.embedded_replicas == 0 or not (s.database.url or s.database.replicas),
            "database.embedded_replicas (serve --replicas) runs replicas of the embedded"
            " database: it cannot be combined with database.url or database.replicas",
        ),
        (0 <= s.database.shard_id < 8192, "database.shard_id must fit 13 bits (0-8191)"),
        (
            s.database.shard_router in ("range", "hash"),
            "database.shard_router (PICSHARE_SHARD_ROUTER) must be range or hash",
        ),
        (
            1 <= s.database.logical_shards <= 8192,
            "database.logical_shards must be between 1 and 8192 (the ID's 13 shard bits)",
        ),
        (
            all(r.startswith(("postgres://", "postgresql://")) for r in s.database.shards),
            "database.shards (PICSHARE_SHARDS) must be postgresql:// URLs",
        ),
        (
            len(s.database.shard_replicas) <= len(s.database.shards),
            "database.shard_replicas has an entry for a shard that database.shards lacks",
        ),
        (
            0 <= s.database.embedded_shards <= 8,
            "database.embedded_shards (serve --shards) must be between 0 and 8",
        ),
        (
            s.database.embedded_shards == 0 or not (s.database.url or s.database.shards),
            "database.embedded_shards (serve --shards) shards across embedded databases:"
            " it cannot be combined with database.url or database.shards",
        ),
        (
            not s.database.shards or not s.database.replicas,
            "with database.shards, give each shard's replicas in database.shard_replicas"
            " (database.replicas are the single database's)",
        ),
        (s.database.shard_budget > 0, "database.shard_budget must be positive"),
        (s.database.shard_map_poll > 0, "database.shard_map_poll must be positive"),
        (s.uploads.max_bytes > 0, "uploads.max_bytes must be positive"),
        (s.uploads.max_pixels > 0, "uploads.max_pixels must be positive"),
        (s.uploads.chunk_bytes >= 4096, "uploads.chunk_bytes must be at least 4096"),
        (s.uploads.read_timeout > 0, "uploads.read_timeout must be positive"),
        (s.uploads.max_caption_chars <= 2200, "uploads.max_caption_chars is at most 2200"),
        (1 <= s.media.jpeg_quality <= 100, "media.jpeg_quality must be 1-100"),
        (s.media.workers >= 0, "media.workers must be >= 0"),
        (s.media.signed_url_ttl >= 60, "media.signed_url_ttl must be at least 60 seconds"),
        (
            s.media.cdn_url == "" or s.media.cdn_url.startswith(("https://", "http://")),
            "media.cdn_url (PICSHARE_MEDIA_CDN_URL) must be an http(s):// URL",
        ),
        (
            s.blobs.backend in ("local", "s3"),
            "blobs.backend (PICSHARE_BLOBS_BACKEND) must be local or s3",
        ),
        (
            s.blobs.backend != "s3" or s.s3.bucket != "",
            "blobs.backend is s3: set s3.bucket (PICSHARE_S3_BUCKET)",
        ),
        (
            s.s3.endpoint_url == "" or s.s3.endpoint_url.startswith(("https://", "http://")),
            "s3.endpoint_url (PICSHARE_S3_ENDPOINT_URL) must be an http(s):// URL",
        ),
        (s.s3.part_size >= 5 * 1024 * 1024, "s3.part_size must be at least 5 MiB (5242880)"),
        (1 <= s.s3.parts_in_flight <= 16, "s3.parts_in_flight must be 1-16"),
        (1 <= s.s3.max_attempts <= 10, "s3.max_attempts must be 1-10"),
        (
            s.s3.connect_timeout > 0 and s.s3.read_timeout > 0,
            "s3.connect_timeout and s3.read_timeout must be positive",
        ),
        (s.jobs.concurrency >= 1, "jobs.concurrency must be at least 1"),
        (s.feed.dense_following >= 1, "feed.dense_following must be at least 1"),
        (
            re.fullmatch(r"[A-Z]{3}", s.payments.currency) is not None,
            "payments.currency must be a three-letter ISO 4217 code like USD",
        ),
        (s.payments.max_topup_cents >= 1, "payments.max_topup_cents must be at least 1"),
        (s.payments.max_tip_cents >= 1, "payments.max_tip_cents must be at least 1"),
        (1 <= s.payments.max_attempts <= 100, "payments.max_attempts must be 1-100"),
        (s.payments.retry_base_delay >= 0, "payments.retry_base_delay must be >= 0"),
        (
            s.redis.url == "" or s.redis.url.startswith(("redis://", "rediss://", "unix://")),
            "redis.url must be a redis:// URL",
        ),
        (s.redis.timeout > 0, "redis.timeout must be positive"),
        (
            s.events.amqp_url == "" or s.events.amqp_url.startswith(("amqp://", "amqps://")),
            "events.amqp_url (PICSHARE_AMQP_URL) must be an amqp:// or amqps:// URL",
        ),
        (bool(s.events.exchange.strip()), "events.exchange must not be empty"),
        (s.events.relay_interval > 0, "events.relay_interval must be positive"),
        (s.events.max_attempts >= 1, "events.max_attempts must be at least 1"),
        (
            0 < s.events.retry_base <= s.events.retry_max,
            "events.retry_base must be positive and at most events.retry_max",
        ),
        (s.events.timeout > 0, "events.timeout must be positive"),
        (s.events.prefetch >= 1, "events.prefetch must be at least 1"),
        (s.events.retention_days > 0, "events.retention_days must be positive"),
        (s.webhooks.timeout > 0, "webhooks.timeout must be positive"),
        (s.webhooks.retry_scale > 0, "webhooks.retry_scale must be positive"),
        (s.webhooks.max_per_user >= 1, "webhooks.max_per_user must be at least 1"),
        (s.webhooks.log_keep >= 1, "webhooks.log_keep must be at least 1"),
        (
            s.moderation.url == "" or s.moderation.url.startswith(("https://", "http://")),
            "moderation.url (PICSHARE_MODERATION_URL) must be an http(s):// URL",
        ),
        (
            s.moderation.url == "" or s.moderation.secret.startswith("whsec_"),
            "moderation.url is set: moderation.secret (PICSHARE_MODERATION_SECRET)"
            " must be a whsec_... secret",
        ),
        (
            s.moderation.url == "" or len(s.moderation.token) >= 16,
            "moderation.url is set: moderation.token (PICSHARE_MODERATION_TOKEN)"
            " must be at least 16 characters",
        ),
        (s.moderation.timeout > 0, "moderation.timeout must be positive"),
        (s.ws.heartbeat >= 1, "ws.heartbeat must be at least 1 second"),
        (
            min(s.cache.photo_ttl, s.cache.profile_ttl, s.cache.feed_ttl, s.cache.public_ttl) > 0,
            "cache TTLs must be positive",
        ),
        (s.cache.max_entries >= 1, "cache.max_entries must be at least 1"),
        (s.ws.send_queue >= 1, "ws.send_queue must be at least 1"),
        (s.graphql.max_depth >= 2, "graphql.max_depth must be at least 2"),
        (s.graphql.max_cost >= 1, "graphql.max_cost must be at least 1"),
        (s.graphql.cost_per_hit >= 1, "graphql.cost_per_hit must be at least 1"),
        (s.graphql.document_cache >= 1, "graphql.document_cache must be at least 1"),
        (s.jobs.max_attempts >= 1, "jobs.max_attempts must be at least 1"),
        (s.jobs.lease_seconds >= 5, "jobs.lease_seconds must be at least 5"),
        (s.auth.password_min >= 8, "auth.password_min must be at least 8"),
        (
            1 <= s.pagination.default_limit <= s.pagination.max_limit,
            "pagination.default_limit must be between 1 and max_limit",
        ),
        (
            s.database.url == "" or s.database.url.startswith(("postgres://", "postgresql://")),
            "database.url must be a postgresql:// URL",
        ),
    ]
    checks.extend(_ratelimit_checks(s.ratelimit))
    checks += [
        (s.idempotency.ttl >= 86400, "idempotency.ttl must be at least 86400 (24 h)"),
        (s.idempotency.lease >= 1, "idempotency.lease must be at least 1 second"),
        (s.idempotency.max_body >= 1024, "idempotency.max_body must be at least 1024"),
        (s.idempotency.sweep_interval > 0, "idempotency.sweep_interval must be positive"),
    ]
    checks += _server_checks(s)
    checks += _service_checks(s)
    for proxy in s.server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            checks.append(
                (False, f"server.trusted_proxies: {proxy!r} is not an address or network")
            )
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)


def _service_checks(s: Settings) -> list[tuple[bool, str]]:
    """`serve --service` and the gateway's settings (picshare/services.py)."""
    role = s.server.service
    gateway = s.gateway
    checks = [
        (role in ROLES, f"server.service must be one of {', '.join(ROLES)}"),
        (
            role in ("all", "gateway") or s.redis.url != "",
            f"serve --service {role} needs PICSHARE_REDIS_URL: the services share their "
            "cache and live notifications only through Redis",
        ),
        (gateway.timeout > 0 and gateway.connect_timeout > 0, "gateway timeouts must be positive"),
        (gateway.breaker_failures >= 1, "gateway.breaker_failures must be at least 1"),
        (gateway.breaker_cooldown > 0, "gateway.breaker_cooldown must be positive"),
        (1 <= gateway.token_ttl <= 300, "gateway.token_ttl must be 1-300 seconds"),
    ]
    try:
        upstreams = parse_pairs(gateway.upstreams, "gateway.upstreams (--upstream)")
        for name, url in upstreams.items():
            check_upstream_url(name, url)
        for name, seconds in parse_pairs(gateway.timeouts, "gateway.timeouts").items():
            if not float(seconds) > 0:
                raise UpstreamError(f"gateway.timeouts: {name} must be positive")
    except UpstreamError as exc:
        return [*checks, (False, str(exc))]
    except ValueError:
        return [*checks, (False, "gateway.timeouts: each must be NAME=SECONDS")]
    if role == "gateway":
        missing = [name for name in SERVICES if name not in upstreams]
        checks += [
            (
                not missing,
                f"serve --service gateway needs --upstream NAME=URL for {', '.join(missing)}"
                " (gateway.upstreams; one URL may serve several names)",
            ),
            (
                len(s.server.internal_secret) >= 16,
                "serve --service gateway needs server.internal_secret"
                " (PICSHARE_SERVER_INTERNAL_SECRET), at least 16 characters, shared with the"
                " services",
            ),
        ]
    return checks


def _server_checks(s: Settings) -> list[tuple[bool, str]]:
    server = s.server
    checks = [
        (1 <= server.workers <= 64, "server.workers must be 1-64"),
        (
            server.workers == 1 or s.redis.url != "",
            f"serve --workers {server.workers} needs PICSHARE_REDIS_URL: separate processes "
            "share their cache, rate limits and live notifications only through Redis "
            "(without it each would keep its own, and a notification would miss the "
            "sockets held by the other processes)",
        ),
        (
            server.workers == 1 or not (s.database.embedded_replicas or s.database.embedded_shards),
            "serve --workers with --replicas or --shards (embedded clusters) is not supported: "
            "each worker would manage the clusters; give database URLs instead",
        ),
        (
            bool(server.certfile) == bool(server.keyfile),
            "server.certfile and server.keyfile (--certfile, --keyfile) go together",
        ),
    ]
    for name in ("certfile", "keyfile"):
        path = getattr(server, name)
        checks.append((not path or Path(path).is_file(), f"server.{name}: no file at {path}"))
    return checks


def _as_raw(s: Settings) -> dict[str, dict[str, Any]]:
    return {f.name: dataclasses.asdict(getattr(s, f.name)) for f in dataclasses.fields(s)}
