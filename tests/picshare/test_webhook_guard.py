"""The SSRF guard's address rules (picshare/webhook_guard.py), and its
resolver on this machine's real resolver: a name is refused by what it
resolves to."""

from __future__ import annotations

import ipaddress

import pytest

from picshare.webhook_guard import GuardedResolver, Refused, check_url, refusal

# Pure rules, no service: the sharded pass would run them the same way again.
pytestmark = pytest.mark.one_pass


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.5.6.7", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to refuse, bound by nobody)
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved, which Python counts as private
        ("100.64.0.1", "reserved"),  # carrier-grade NAT: not on the internet
    ],
)
def test_refused_addresses(address: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(address), allow_loopback=False)
    assert reason is not None and why in reason


def test_public_addresses_pass_and_loopback_only_when_allowed() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address("::1"), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) is not None
    assert refusal(ipaddress.ip_address("169.254.169.254"), allow_loopback=True) is not None


async def test_names_are_judged_by_their_addresses() -> None:
    reason = await check_url("http://localhost:80/x", allow_loopback=False, timeout=5)
    assert reason is not None and "localhost resolves to 127.0.0.1" in reason
    assert await check_url("http://localhost/x", allow_loopback=True, timeout=5) is None
    assert await check_url("http://[::1]/x", allow_loopback=True, timeout=5) is None
    missing = await check_url("http://no-such-host.invalid/x", allow_loopback=True, timeout=5)
    assert missing is not None and "does not resolve" in missing


async def test_the_resolver_refuses_before_any_connection() -> None:
    resolver = GuardedResolver(allow_loopback=False)
    try:
        with pytest.raises(Refused, match="localhost resolves to"):
            await resolver.resolve("localhost", 80)
        allowed = GuardedResolver(allow_loopback=True)
        [found, *_] = await allowed.resolve("localhost", 80)
        assert found["host"] == "127.0.0.1"
        await allowed.close()
    finally:
        await resolver.close()
