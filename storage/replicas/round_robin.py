"""Each read to the next usable replica in turn."""

from __future__ import annotations

from collections.abc import Sequence

from storage.node import Node


class RoundRobin:
    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, candidates: Sequence[Node], key: int | None) -> Node:
        self._turn += 1
        return candidates[self._turn % len(candidates)]
