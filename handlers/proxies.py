"""Behind a reverse proxy: believe `X-Forwarded-For` / `X-Forwarded-Proto` only
from the proxies listed in `server.trusted_proxies`, so `request.remote` is the
client's address and `request.secure` is true under HTTPS (Secure cookies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from picshare import keys

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _in(networks: list[Network], address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in networks)


def through_trusted_proxy(request: web.Request) -> bool:
    """Whether the connection's own peer is a trusted proxy: then
    `request.remote` is the client's address as the proxies told it."""
    trusted = request.app[keys.SETTINGS].server.trusted_proxies
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return False
    return _in([ipaddress.ip_network(t, strict=False) for t in trusted], str(peer[0]))


def forwarded_middleware(trusted: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    networks: list[Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(address: str | None) -> bool:
        return _in(networks, address)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not networks or not is_trusted(request.remote):
            return await handler(request)
        # Walk X-Forwarded-For from the right: the first hop we do not trust is the client.
        hops = [
            h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()
        ]
        client = request.remote or ""
        for hop in reversed(hops):
            client = hop
            if not is_trusted(hop):
                break
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        scheme = proto if proto in {"http", "https"} else request.scheme
        clone = request.clone(remote=client, scheme=scheme)
        try:
            return await handler(clone)
        finally:
            # The access log is given the original request: it logs the id too.
            if keys.REQUEST_ID in clone:
                request[keys.REQUEST_ID] = clone[keys.REQUEST_ID]

    return middleware
