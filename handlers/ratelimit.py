"""Rate limits on HTTP: each request's decision (taken by the request layer,
handlers/middlewares.py), the log-in check, and the headers.

The decision is taken after authentication, so a signed-in user is limited by
their id wherever they connect from, and anyone else by client IP (as the
trusted-proxy middleware rewrote it; an IPv6 client by its /64, which one
subscriber usually holds whole). Log-in and sign-up go by client IP, and
`limit_login` adds a budget per username tried, which the middleware cannot
see without reading the body.

Every limited response, success or error, carries the IETF draft's
`RateLimit-Policy` and `RateLimit` fields for the tightest decision taken;
a refusal is a 429 problem (or error page) with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata

from aiohttp import web
from multidict import CIMultiDict

from picshare import keys
from picshare.errors import RateLimited
from picshare.metrics import Metrics
from picshare.ratelimit import Decision, Policies, Policy, RateClass, RateLimiter
from storage.cache.memo import Memo

__all__ = ["charge", "client_key", "decide", "decide_now", "limit_login", "refusal", "set_headers"]


def decide_now(
    request: web.Request, limiter: RateLimiter, policy: Policy, metrics: Metrics
) -> Decision | None:
    """The request's decision under its route's `policy`, when the limiter
    can take it at once (in this process: no coroutine); None, having
    counted nothing, when it is a round trip away (then `decide`). Log-in
    and sign-up go by IP even when signed in: they are about credentials."""
    key = client_key(request, by_user=policy.name != "login")
    decision = limiter.hit_now(key, policy)
    if decision is not None:
        metrics.count_decision(policy.name, _result(decision))
        request[keys.RATELIMIT] = decision  # the first of this request: the tightest yet
    return decision


async def decide(
    request: web.Request, limiter: RateLimiter, policy: Policy, metrics: Metrics
) -> Decision:
    key = client_key(request, by_user=policy.name != "login")
    decision = await limiter.hit(key, policy)
    metrics.count_decision(policy.name, _result(decision))
    request[keys.RATELIMIT] = decision
    return decision


async def limit_login(request: web.Request, username: object) -> None:
    """Count a log-in attempt against the username tried; raise `RateLimited`
    past the login policy. Call it before checking the password."""
    settings = request.app[keys.SETTINGS].ratelimit
    if not settings.enabled or not isinstance(username, str):
        return  # a missing username is the handler's 400, and costs no hash
    # Normalised as UserService.login does, so "Alice " and "alice" share one
    # budget; hashed so that a 1 MB username makes a short key.
    name = unicodedata.normalize("NFKC", username.strip()).lower()
    if not name:
        return
    digest = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    decision = await _hit(request, Policies.from_settings(settings).login, f"name:{digest}")
    if not decision.allowed:
        raise refusal(decision)


async def charge(request: web.Request, times: int, rate: RateClass | None = None) -> None:
    """Count `times` more hits against the policy of class `rate` (by default
    the one this request was limited by): an expensive GraphQL operation
    costs more than one request, a mutation is a write. Raise `RateLimited`
    once the budget runs out. Nothing when limits are off."""
    settings = request.app[keys.SETTINGS].ratelimit
    if not settings.enabled or times <= 0:
        return
    decision = request.get(keys.RATELIMIT)
    route = request.get(keys.ROUTE)
    route_rate = route.rate if route is not None else None
    if decision is not None:
        base = decision.policy
    elif request.get(keys.PRECHECKED) and route_rate is not None:
        # Behind the gateway, which charged the request itself: its extra
        # cost is this service's to charge, against the same budget (the
        # limiter's store is the site's Redis, shared with the gateway).
        base = Policies.from_settings(settings).of(route_rate)
    else:
        return
    policy = base if rate is None else Policies.from_settings(settings).of(rate)
    key = client_key(request, by_user=True)
    for _ in range(times):
        hit = await _hit(request, policy, key)
        if not hit.allowed:
            raise refusal(hit)


def client_key(request: web.Request, *, by_user: bool = True) -> str:
    """Who a request is counted against: the signed-in user, else the client IP."""
    user = request.get(keys.USER) if by_user else None
    if user is not None:
        return f"user:{user.id}"
    return _address_key(request.remote or "")


def _ip_key(remote: str) -> str:
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return f"ip:{remote or 'unknown'}"  # e.g. a Unix socket: one shared budget
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"ip:{ip}"


# Parsing an address costs more than the rest of a limit decision: each
# address is parsed once while it keeps sending.
_address_key: Memo[str, str] = Memo(_ip_key, max_entries=65536)


def set_headers(headers: CIMultiDict[str], decision: Decision) -> None:
    """The IETF RateLimit fields (structured-field form) and, on a refusal, Retry-After."""
    policy = decision.policy
    headers["RateLimit-Policy"] = policy.header
    if not decision.unmetered:  # nothing was counted: there is nothing true to say
        headers["RateLimit"] = f'"{policy.name}";r={decision.remaining};t={decision.reset}'
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after)


async def _hit(request: web.Request, policy: Policy, key: str) -> Decision:
    decision = await request.app[keys.RATE_LIMITER].hit(key, policy)
    request.app[keys.METRICS].count_decision(policy.name, _result(decision))
    current = request.get(keys.RATELIMIT)
    if current is None or _tighter(decision, current):
        request[keys.RATELIMIT] = decision
    return decision


def _result(decision: Decision) -> str:
    return "unmetered" if decision.unmetered else "allowed" if decision.allowed else "limited"


def _tighter(a: Decision, b: Decision) -> bool:
    return (a.allowed, a.remaining, -a.reset_us) < (b.allowed, b.remaining, -b.reset_us)


def refusal(decision: Decision) -> RateLimited:
    policy = decision.policy
    wait = decision.retry_after
    return RateLimited(
        f"Too many requests ({policy.name}: {policy.quota} per {policy.window} s);"
        f" retry in {wait} s.",
        retry_after=wait,
    )
