"""Sticky by key (the reader's user id): rendezvous hashing, so when a replica
drops out only the keys it held move, and they move back when it returns.
Reads without a key go round robin."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from storage.node import Node


class StickyHash:
    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, candidates: Sequence[Node], key: int | None) -> Node:
        if key is None:
            self._turn += 1
            return candidates[self._turn % len(candidates)]
        return max(candidates, key=lambda node: _weight(key, node.label))


def _weight(key: int, label: str) -> bytes:
    return hashlib.blake2b(f"{key}:{label}".encode(), digest_size=8).digest()
