"""The range router: the story's "users A-M on DB1, N-Z on DB2".

Each range of usernames is one logical shard; `starts` are the first
characters of every range after the first, in order (the default for two
databases is ["n"]: a-m, digits, `_` and `.` on the first, n-z on the
second). Ranges are compared on the username's first character only, so a
range is a readable setting ("n", "t"), and a new range splits no name."""

from __future__ import annotations

import bisect
import string


class RangeRouter:
    __slots__ = ("_starts",)

    def __init__(self, starts: list[str]) -> None:
        for start in starts:
            if len(start) != 1 or start not in string.ascii_lowercase:
                raise ValueError(f"a range starts at one letter a-z, not {start!r}")
        if starts != sorted(set(starts)):
            raise ValueError(f"range starts must be distinct and in order: {starts}")
        self._starts = starts

    @staticmethod
    def even_starts(physical: int) -> list[str]:
        """Starts that share a-z about evenly among `physical` databases
        (two: ["n"], the story's a-m / n-z)."""
        letters = string.ascii_lowercase
        return [letters[i * 26 // physical] for i in range(1, physical)]

    @property
    def logical_shards(self) -> int:
        return len(self._starts) + 1

    def logical_for_username(self, username: str) -> int:
        # Digits, "_" and "." sort before "a": the first range, as CONTRACT.md says.
        return bisect.bisect_right(self._starts, username[:1])

    def default_placement(self, physical: int) -> list[int]:
        # One range per database, in order; more ranges than databases wrap.
        return [i % physical for i in range(self.logical_shards)]
