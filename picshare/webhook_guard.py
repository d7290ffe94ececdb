"""Where a user's webhook may point: the SSRF guard.

A user names the URL, and the server POSTs to it from inside the network, so
a URL must not reach the server itself or its neighbours: loopback, private,
link-local (the cloud metadata address 169.254.169.254), multicast,
unspecified and reserved addresses are refused. `webhooks.allow_loopback`
admits loopback only (tests, a receiver on the same machine).

Checked twice: when an endpoint is registered (a clear 400 naming `url`) and
at every delivery, since DNS can change between the two. At delivery the
name is resolved by `GuardedResolver`, inside the connector: the addresses it
checks are the ones aiohttp connects to, so no second lookup can answer
otherwise (DNS rebinding). aiohttp connects to an IP literal without asking
the resolver, so `refusal_of_url` checks literals before the attempt.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(OSError):
    """A webhook URL that may not be reached (an OSError, so that aiohttp
    reports it as a connection error of the attempt, quoting `strerror`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPERM, reason)


def refusal(ip: IpAddress, *, allow_loopback: bool) -> str | None:
    """Why this address may not be reached, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal_of_literal(host: str, *, allow_loopback: bool) -> str | None:
    """For a host that is an IP address: why it is refused (None: allowed, or a name)."""
    ip = _literal(host)
    if ip is None:
        return None
    reason = refusal(ip, allow_loopback=allow_loopback)
    return None if reason is None else f"{host} is {reason}"


def _refusal_of_addresses(host: str, addresses: list[str], *, allow_loopback: bool) -> str | None:
    """Any refused address refuses the name: a name that resolves to a
    public and a private address is a rebinding attempt, not half right."""
    for address in addresses:
        reason = refusal(ipaddress.ip_address(address.split("%")[0]), allow_loopback=allow_loopback)
        if reason is not None:
            return f"{host} resolves to {address}, {reason}"
    return None


async def check_url(url: str, *, allow_loopback: bool, timeout: float) -> str | None:
    """Why `url`'s host may not be reached (resolving a name, within
    `timeout`), or None. The URL is already known to be http(s) with a host."""
    host = urlsplit(url).hostname or ""
    if _literal(host) is not None:
        return refusal_of_literal(host, allow_loopback=allow_loopback)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return f"{host} does not resolve"
    addresses = [str(info[4][0]) for info in infos]
    return _refusal_of_addresses(host, addresses, allow_loopback=allow_loopback)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to refused addresses."""

    __slots__ = ("_allow_loopback", "_inner")

    def __init__(self, *, allow_loopback: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_loopback = allow_loopback

    def __repr__(self) -> str:
        return f"<GuardedResolver allow_loopback={self._allow_loopback}>"

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        reason = _refusal_of_addresses(
            host, [r["host"] for r in found], allow_loopback=self._allow_loopback
        )
        if reason is not None:
            raise Refused(f"refused: {reason}")
        return found

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(*, allow_loopback: bool, **options: Any) -> aiohttp.ClientSession:
    """A client session whose every name goes through the guard. No
    environment proxies (a proxy would connect on our behalf, unchecked)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_loopback=allow_loopback))
    return aiohttp.ClientSession(connector=connector, trust_env=False, **options)
