"""The asyncpg connection pool and the helpers every repository uses."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

Pool: TypeAlias = asyncpg.Pool
# What repositories take: a plain connection or one lent by the pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def _init_connection(conn: Connection) -> None:
    # jsonb columns come back as Python objects, not strings; orjson both ways,
    # so what is read back can always be written out again (json.loads would
    # turn a stored 1e20 into an integer orjson cannot encode).
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=orjson.loads, schema="pg_catalog"
    )


def _jsonb_encode(value: object) -> str:
    return orjson.dumps(value).decode()


async def _keep_session(conn: Connection) -> None:
    """The pool's reset hook, doing nothing (see `create_pool`)."""


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, command_timeout: float, connect_timeout: float
) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=connect_timeout,
        init=_init_connection,
        # asyncpg resets every released connection (RESET ALL, UNLISTEN *,
        # advisory unlock...): a second round trip per request. PicShare keeps
        # no session state on pooled connections (advisory locks are
        # transaction-scoped, except migrate's, which it releases itself), so
        # the reset is skipped. Anything needing LISTEN takes its own connection.
        reset=_keep_session,
        server_settings={"application_name": "picshare"},
    )
    assert pool is not None
    return pool


def sql_literal(value: StrEnum) -> str:
    """A status or kind as an SQL literal, for predicates that must match a
    partial index's own (WHERE status = 'ready'): a parameter would not."""
    return "'" + value.replace("'", "''") + "'"
