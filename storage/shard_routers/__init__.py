"""Shard routers: which logical shard a user belongs to (DESIGN.md, "The
storage router").

One module per router, chosen once by name (`database.shard_router`):
`range` (the story's own: usernames a-m on the first database, n-z on the
second; each range is one logical shard) and `hash` (Instagram-style: a
stable hash of the username over thousands of logical shards). Either way
the user's logical shard is fixed at sign-up and carried in the 13 shard bits
of every ID the user's rows get, so a lookup by ID needs no router at all;
the shard map (storage/shard_map.py) says which physical database holds each
logical shard, so moving one is a map change, not a rehash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

# The shard bits of an ID (storage/ids.py): 13.
MAX_LOGICAL_SHARDS = 8192


class ShardRouter(Protocol):
    """Maps a (normalized, lower-case) username to its logical shard."""

    @property
    def logical_shards(self) -> int:
        """How many logical shards there are: 0 .. logical_shards-1."""

    def logical_for_username(self, username: str) -> int:
        """The logical shard of the user called `username`."""

    def default_placement(self, physical: int) -> list[int]:
        """Where each logical shard lives on a new site with `physical`
        databases: entry i is logical shard i's database (0-based)."""


ROUTERS = ("range", "hash")


def shard_router(
    name: str, *, physical: int, logical_shards: int, ranges: Sequence[str]
) -> ShardRouter:
    """The router called `name` (one of ROUTERS) for `physical` databases."""
    if name == "range":
        from storage.shard_routers.range import RangeRouter

        return RangeRouter(list(ranges) if ranges else RangeRouter.even_starts(physical))
    if name == "hash":
        from storage.shard_routers.hashed import HashRouter

        return HashRouter(logical_shards)
    raise ValueError(f"unknown shard router {name!r}: use one of {', '.join(ROUTERS)}")


def stable_hash(text: str) -> int:
    """A hash that every process and every Python agrees on (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
