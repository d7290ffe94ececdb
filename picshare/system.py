"""The site as it runs, for the `/system` page: each process (from the
process registry's heartbeats), each database (role, up, lag, connections),
the queues' depths, the cache's hit ratio and the open sockets.

Who may look is decided here, once: the site's admins (`server.admins`,
usernames), or anyone on this machine (a request from a loopback address,
direct or through trusted proxies that say so), since it shows the site's
insides."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict
from typing import Any

from picshare.health import HealthService
from picshare.live import SocketHub
from picshare.metrics import Metrics
from picshare.process_registry import BEAT_EVERY, ProcessInfo, ProcessRegistry
from storage.records import UserRecord

log = logging.getLogger(__name__)


def may_view(
    user: UserRecord | None, remote: str | None, forwarded: bool, admins: tuple[str, ...]
) -> bool:
    """Admins from anywhere; anyone from this machine. `forwarded`: the
    request came through a proxy that is not trusted, which hides where from."""
    if user is not None and user.username.lower() in {a.lower() for a in admins}:
        return True
    if forwarded or not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class SystemService:
    """This process's heartbeat, and the snapshot the page shows (asked of a
    process with the site's services; the gateway only beats: it has no
    sockets of its own and passes /system on to the web service)."""

    __slots__ = (
        "_consumers",
        "_health",
        "_hub",
        "_kind",
        "_listen",
        "_metrics",
        "_registry",
        "_started",
        "_stopping",
        "process_id",
    )

    def __init__(
        self,
        *,
        registry: ProcessRegistry,
        health: HealthService | None,
        hub: SocketHub | None,
        metrics: Metrics,
        kind: str,
        listen: str,
        consumers: str,
    ) -> None:
        self._registry = registry
        self._health = health
        self._hub = hub
        self._metrics = metrics
        self._kind = kind
        self._listen = listen
        self._consumers = consumers
        self._started = time.time()
        self._stopping = asyncio.Event()
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def __repr__(self) -> str:
        return f"<SystemService {self._kind} {self.process_id}>"

    def me(self) -> ProcessInfo:
        hits, misses = self._cache_counts()
        return ProcessInfo(
            id=self.process_id,
            kind=self._kind,
            host=socket.gethostname(),
            pid=os.getpid(),
            listen=self._listen,
            started_at=self._started,
            seen_at=time.time(),
            sockets=0 if self._hub is None else self._hub.count,
            in_flight=self._metrics.requests.in_flight,
            cache_hits=hits,
            cache_misses=misses,
            consumers=self._consumers,
        )

    async def heartbeat(self) -> None:
        """Tell the registry about this process until `stop()`; then leave it.

        Stopped by a flag, not by cancelling: a cancellation that arrives as
        a Redis command completes can be lost on Python 3.11 (the client and
        `asyncio.timeout` each catch it), and the loop would then sleep on
        while the app's clean-up waited for it for ever."""
        try:
            while not self._stopping.is_set():
                try:
                    await self._registry.beat(self.me())
                except Exception as exc:  # Redis away: the page misses us a while
                    log.warning("process registry: heartbeat failed: %r", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BEAT_EVERY):
                        await self._stopping.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._registry.leave(self.process_id))

    def stop(self) -> None:
        """End `heartbeat` (it leaves the registry as it ends)."""
        self._stopping.set()

    async def snapshot(self) -> dict[str, Any]:
        if self._health is None:
            raise RuntimeError(
                "a process without the site's services (the gateway) has no snapshot"
            )
        await self._registry.beat(self.me())  # this process as it is now
        processes = await self._registry.processes()
        now = time.time()
        hits = sum(p.cache_hits for p in processes)
        misses = sum(p.cache_misses for p in processes)
        return {
            "processes": [
                {**p.to_json(), "age_seconds": round(now - p.seen_at, 1)} for p in processes
            ],
            "databases": [asdict(d) for d in self._health.databases()],
            "queues": {
                "outbox_backlog": await self._health.outbox_backlog(),
                "jobs_queued": await self._health.jobs_queued(),
            },
            "cache": {
                "hits": hits,
                "misses": misses,
                "hit_ratio": round(hits / (hits + misses), 3) if hits + misses else None,
            },
            "sockets": sum(p.sockets for p in processes),
        }

    def _cache_counts(self) -> tuple[int, int]:
        """Cache lookups this process made, hits and misses (every cache)."""
        hits = misses = 0
        for family in self._metrics.cache_requests.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.labels.get("result") == "hit":
                    hits += int(sample.value)
                elif sample.labels.get("result") == "miss":
                    misses += int(sample.value)
        return hits, misses
