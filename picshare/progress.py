"""Progress bars of the long commands (seed, shard moves), on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable


class Progress:
    """One line per stage on stderr, redrawn in place: `[likes] 400,000/1,000,000`."""

    def __init__(self, quiet: bool = False) -> None:
        self._quiet = quiet

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        def show(done: int) -> None:
            if self._quiet:
                return
            bar = "#" * int(30 * done / max(total, 1))
            sys.stderr.write(f"\r[{name:>8}] {bar:<30} {done:>10,}/{total:,}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        show(0)
        return show
