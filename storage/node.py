"""One database server as the router sees it: its pool and what its watcher
last learnt about it (up or down, WAL position, lag)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from storage.db import Pool


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(slots=True, eq=False)
class Node:
    """`label` is what operators read: "primary", or "replica-N" counting from 1
    in the order of the replica setting."""

    label: str
    role: Role
    pool: Pool
    up: bool = True
    # The primary: its current WAL position. A replica: how far it has replayed.
    lsn: int = 0
    # Seconds the replica's replay is behind the primary (0: it has everything).
    lag: float = 0.0
    last_error: str = ""
    checked_at: float = field(default_factory=time.monotonic)

    def in_use(self) -> int:
        """Connections lent out right now (what least-connections compares)."""
        return self.pool.get_size() - self.pool.get_idle_size()

    def mark_down(self, error: BaseException) -> None:
        # The watcher sets it up again once the server answers.
        self.up = False
        self.last_error = type(error).__name__
