"""Decoded values of cache entries, kept so that a hit allocates nothing.

A cache hit hands back the entry's encoded bytes; decoding them into records
(and joining a photo with its owner, and serialising the result) is most of
what a cached read costs. `Memo` keeps the result per exact input, in a
bounded LRU: the same bytes always decode to the same immutable value, so a
memo can never be stale; when an entry changes, its bytes change and the old
result simply ages out. Keys are the bytes themselves (Python caches a bytes
object's hash), so this works as well when every hit brings fresh bytes from
Redis as when the in-process cache hands back the same object.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Obj = TypeVar("Obj")
V = TypeVar("V")

__all__ = ["IdentityMemo", "Memo"]


class Memo(Generic[K, V]):
    __slots__ = ("_entries", "_make", "_max_entries")

    def __init__(self, make: Callable[[K], V], *, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._make = make
        self._max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __repr__(self) -> str:
        return f"<Memo {len(self._entries)}/{self._max_entries}>"

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, key: K) -> V:
        entries = self._entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
            return value
        value = self._make(key)
        entries[key] = value
        if len(entries) > self._max_entries:
            entries.popitem(last=False)
        return value


class IdentityMemo(Generic[Obj, V]):
    """Values made from objects that are shared while they stay current (the
    records and pages a `Memo` hands out), kept per object identity.

    An entry holds its object, so the id it is filed under cannot be reused
    by another object while the entry lives; unhashable objects (records
    holding lists) work too. Bounded, least recently used first out.
    """

    __slots__ = ("_entries", "_max_entries")

    def __init__(self, *, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[int, tuple[Obj, V]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<IdentityMemo {len(self._entries)}/{self._max_entries}>"

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, obj: Obj, make: Callable[[Obj], V]) -> V:
        entries = self._entries
        key = id(obj)
        hit = entries.get(key)
        if hit is not None and hit[0] is obj:
            entries.move_to_end(key)
            return hit[1]
        value = make(obj)
        entries[key] = (obj, value)
        if len(entries) > self._max_entries:
            entries.popitem(last=False)
        return value
