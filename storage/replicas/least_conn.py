"""The usable replica with the fewest connections lent out; ties go round."""

from __future__ import annotations

from collections.abc import Sequence

from storage.node import Node


class LeastConnections:
    __slots__ = ("_turn",)

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, candidates: Sequence[Node], key: int | None) -> Node:
        # Rotating the start breaks ties in turn, so an idle site still spreads.
        self._turn += 1
        n = len(candidates)
        start = self._turn % n
        best = candidates[start]
        best_load = best.in_use()
        for i in range(1, n):
            node = candidates[(start + i) % n]
            load = node.in_use()
            if load < best_load:
                best, best_load = node, load
        return best
