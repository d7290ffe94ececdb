"""Replica selection: which of the usable replicas serves a read.

One module per policy, chosen once by name (`database.replica_policy`):
`round_robin`, `least_conn` (fewest connections lent out), `hash` (sticky by a
key, the reader's user id, so one user's reads land on one replica and see
one consistent history while it stays usable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.node import Node


class ReplicaPolicy(Protocol):
    """Picks one of `candidates` (never empty; all up and within the lag bound)."""

    def choose(self, candidates: Sequence[Node], key: int | None) -> Node: ...


POLICIES = ("round_robin", "least_conn", "hash")


def replica_policy(name: str) -> ReplicaPolicy:
    """The policy called `name` (one of POLICIES)."""
    if name == "round_robin":
        from storage.replicas.round_robin import RoundRobin

        return RoundRobin()
    if name == "least_conn":
        from storage.replicas.least_conn import LeastConnections

        return LeastConnections()
    if name == "hash":
        from storage.replicas.sticky_hash import StickyHash

        return StickyHash()
    raise ValueError(f"unknown replica policy {name!r}: use one of {', '.join(POLICIES)}")
