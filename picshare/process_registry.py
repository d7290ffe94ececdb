"""Which PicShare processes run, as the `/system` page shows them: each
process tells a registry about itself every few seconds (a heartbeat), and
one that stops telling drops out. With Redis every process of the site sees
every other (picshare/process_registry_redis.py); without it, a process
knows only itself (picshare/process_registry_local.py). Chosen once, in
`process_registry`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

# Seconds between heartbeats, and how long a process is listed after its last.
BEAT_EVERY = 2.0
FORGET_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    id: str  # host:pid:random, as the job runner names itself
    kind: str  # "web" (run.py serve), "worker" (run.py worker), a service's name
    host: str
    pid: int
    listen: str  # where it serves HTTP ("" for a worker)
    started_at: float  # seconds since the epoch
    seen_at: float
    sockets: int  # open WebSockets
    in_flight: int  # HTTP requests being answered
    cache_hits: int
    cache_misses: int
    consumers: str  # the event consumers it runs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ProcessInfo:
        return cls(**{k: value[k] for k in cls.__dataclass_fields__})


class ProcessRegistry(Protocol):
    async def beat(self, info: ProcessInfo) -> None:
        """This process is alive and looks like `info` now."""

    async def leave(self, process_id: str) -> None:
        """This process is stopping: list it no more."""

    async def processes(self) -> list[ProcessInfo]:
        """Every process heard from within FORGET_AFTER seconds, by kind then id."""


def process_registry(redis: Redis | None, *, timeout: float) -> ProcessRegistry:
    if redis is None:
        from picshare.process_registry_local import LocalRegistry

        return LocalRegistry()
    from picshare.process_registry_redis import RedisRegistry

    return RedisRegistry(redis, timeout=timeout)
