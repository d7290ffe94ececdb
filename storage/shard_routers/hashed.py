"""The hash router: Instagram-style logical shards.

A stable hash of the username picks one of `logical_shards` logical shards
(thousands; at most 8192, the ID's 13 shard bits). The shard map places
them on the physical databases in contiguous blocks at first; a move changes
one entry of the map, and no user's logical shard ever changes."""

from __future__ import annotations

from storage.shard_routers import MAX_LOGICAL_SHARDS, stable_hash


class HashRouter:
    __slots__ = ("_count",)

    def __init__(self, logical_shards: int) -> None:
        if not 1 <= logical_shards <= MAX_LOGICAL_SHARDS:
            raise ValueError(
                f"logical shards must be 1..{MAX_LOGICAL_SHARDS}, not {logical_shards}"
            )
        self._count = logical_shards

    @property
    def logical_shards(self) -> int:
        return self._count

    def logical_for_username(self, username: str) -> int:
        return stable_hash(username) % self._count

    def default_placement(self, physical: int) -> list[int]:
        return [i * physical // self._count for i in range(self._count)]
