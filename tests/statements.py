"""Count the SQL statements an app sends for requests, on every pool of every
database it has (asyncpg's query loggers on each pooled connection, all
opened first, so none made later goes uncounted). Background work (jobs,
fan-out) runs outside any request's storage scope and is left out: asyncpg
calls the logger in the context of the code that ran the statement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from storage import scope
from storage.shards import Shards

# asyncpg's own type introspection, run once per connection the first time a
# statement returns a type it has not decoded yet (three statements: jit off,
# the typeinfo query, jit back): the connection's cost, not the request's.
# Which pooled connection a request gets is luck, so counting it made page
# costs differ by three at random.
_INTROSPECTION = ("typeinfo_tree", "set_config('jit'")


class Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, record: Any) -> None:
        if scope.CURRENT.get() is not None and not any(m in record.query for m in _INTROSPECTION):
            self.seen.append(record.query)

    def __len__(self) -> int:
        return len(self.seen)

    def clear(self) -> None:
        self.seen.clear()


@asynccontextmanager
async def counting(shards: Shards) -> AsyncIterator[Statements]:
    counter = Statements()
    pools = [node.pool for db in shards.everything() for node in (db.primary, *db.replicas)]

    async def each(add: bool) -> None:
        for pool in pools:
            async with AsyncExitStack() as stack:
                conns = await asyncio.gather(
                    *(stack.enter_async_context(pool.acquire()) for _ in range(pool.get_max_size()))
                )
                for conn in conns:
                    if add:
                        conn.add_query_logger(counter)
                    else:
                        conn.remove_query_logger(counter)

    await each(True)  # every connection the pools may lend, opened and counted
    try:
        yield counter
    finally:
        await each(False)
