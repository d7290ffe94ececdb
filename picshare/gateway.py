"""The gateway's upstreams: where each service answers, how long it may take,
its circuit breaker, and the one HTTP client that reaches them all.

The HTTP side (the proxy, WebSockets, `/readyz`) is handlers/gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from picshare.circuit_breaker import CircuitBreaker
from picshare.config import Settings
from picshare.internal_token import InternalTokens
from picshare.services import SERVICES, parse_pairs

__all__ = ["Gateway", "Upstream", "open_gateway"]

# The gateway's own /readyz asks each upstream's, within this.
READY_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str  # without a trailing slash
    # Seconds for the upstream to start its answer (and between its reads).
    timeout: aiohttp.ClientTimeout
    breaker: CircuitBreaker


class Gateway:
    """Upstreams by service name, the internal-token signer, the client session."""

    __slots__ = ("client", "tokens", "upstreams")

    def __init__(
        self, upstreams: dict[str, Upstream], tokens: InternalTokens, client: aiohttp.ClientSession
    ) -> None:
        self.upstreams = upstreams
        self.tokens = tokens
        self.client = client

    def __repr__(self) -> str:
        return f"<Gateway {', '.join(f'{n}={u.url}' for n, u in self.upstreams.items())}>"

    async def readiness(self) -> dict[str, str]:
        """Each upstream's own /readyz: "ok", or what went wrong (asked once per URL)."""
        by_url: dict[str, list[str]] = {}
        for name, upstream in self.upstreams.items():
            by_url.setdefault(upstream.url, []).append(name)
        answers = await asyncio.gather(*(self._ready(url) for url in by_url))
        result: dict[str, str] = {}
        for (_url, names), answer in zip(by_url.items(), answers, strict=True):
            for name in names:
                result[name] = answer
        return result

    async def _ready(self, url: str) -> str:
        try:
            async with self.client.get(
                f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT)
            ) as resp:
                await resp.read()
                return "ok" if resp.status == 200 else f"not ready ({resp.status})"
        except TimeoutError:
            return "timed out"
        except aiohttp.ClientError as exc:
            return f"unreachable ({type(exc).__name__})"


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    config = settings.gateway
    urls = parse_pairs(config.upstreams, "gateway.upstreams")
    timeouts = {n: float(t) for n, t in parse_pairs(config.timeouts, "gateway.timeouts").items()}
    upstreams: dict[str, Upstream] = {
        name: Upstream(
            name,
            urls[name].rstrip("/"),
            aiohttp.ClientTimeout(
                total=None,
                connect=config.connect_timeout,
                sock_read=timeouts.get(name, config.timeout),
            ),
            CircuitBreaker(failures=config.breaker_failures, cooldown=config.breaker_cooldown),
        )
        for name in SERVICES
    }
    tokens = InternalTokens(settings.server.internal_secret, ttl=config.token_ttl)
    client = aiohttp.ClientSession(
        # Bodies pass through as they are: compressed stays compressed.
        auto_decompress=False,
        # Cookies belong to the browser, not to the gateway's client.
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=512, keepalive_timeout=30),
    )
    try:
        yield Gateway(upstreams, tokens, client)
    finally:
        await client.close()
