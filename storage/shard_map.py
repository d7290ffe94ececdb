"""The shard map: which physical database holds each logical shard.

Kept in the catalog database (`shard_map`, with the router it was made for in
`shard_catalog`), made once when a site first starts with its databases,
read by every process at start. Moving a logical shard
(`run.py shards move`) changes one row; no user's logical shard changes.

A site's router and logical shard count are fixed once data exists: a start
with other settings is refused rather than looking for users in the wrong
place."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Connection


class ShardMapError(Exception):
    """The settings do not match the map the site was made with."""


@dataclass(frozen=True, slots=True)
class ShardMap:
    router: str
    # placement[logical] is the index of the physical database holding it.
    placement: tuple[int, ...]
    version: int = 0

    def physical_of(self, logical: int) -> int:
        # IDs made before sharding existed carry logical shard 1 whatever the
        # router: beyond the map's range they wrap, never fail.
        return self.placement[logical % len(self.placement)]

    def logical_on(self, physical: int) -> list[int]:
        return [i for i, p in enumerate(self.placement) if p == physical]

    def moved(self, logical: int, physical: int) -> ShardMap:
        placement = list(self.placement)
        placement[logical] = physical
        return ShardMap(self.router, tuple(placement), self.version + 1)


async def load_or_create(
    conn: Connection, *, router: str, placement: list[int], physical: int
) -> ShardMap:
    """The site's map; made from `placement` (the router's default) on the
    first start. Refuses a router or shard count other than the site's."""
    async with conn.transaction():
        # One process makes the map; the others wait and read it.
        await conn.execute("LOCK TABLE shard_catalog IN EXCLUSIVE MODE")
        row = await conn.fetchrow("SELECT router, logical_shards FROM shard_catalog")
        if row is None:
            await conn.execute(
                "INSERT INTO shard_catalog (router, logical_shards, version) VALUES ($1, $2, 0)",
                router,
                len(placement),
            )
            await conn.executemany(
                "INSERT INTO shard_map (logical, physical) VALUES ($1, $2)",
                list(enumerate(placement)),
            )
            return ShardMap(router, tuple(placement), 0)
        if row["router"] != router or row["logical_shards"] != len(placement):
            raise ShardMapError(
                f"this site's shards were made by the {row['router']} router with "
                f"{row['logical_shards']} logical shards; the settings say {router} with "
                f"{len(placement)}: change the settings back (data is placed by the first)"
            )
        found = await load(conn, router)
    beyond = sorted({p for p in found.placement if p >= physical})
    if beyond:
        raise ShardMapError(
            f"the shard map places logical shards on database(s) {beyond} (0-based) but only "
            f"{physical} are configured: add them back to the shard list"
        )
    return found


async def load(conn: Connection, router: str) -> ShardMap:
    """The map as the catalog has it now (a move may have changed it).

    One statement, so one snapshot: read in two, a move's switch committing
    between them gave the old placement with the new version, and since a
    reload keeps the map it has when the version is the same, that process
    kept sending the moved shard's writes to the old database for good."""
    row = await conn.fetchrow(
        "SELECT (SELECT version FROM shard_catalog) AS version, "
        "ARRAY(SELECT physical FROM shard_map ORDER BY logical) AS placement"
    )
    assert row is not None  # a SELECT without FROM always answers one row
    return ShardMap(router, tuple(row["placement"]), int(row["version"] or 0))


async def save_move(conn: Connection, logical: int, physical: int) -> int:
    """Point `logical` at `physical` (inside the caller's transaction); the new version."""
    await conn.execute("UPDATE shard_map SET physical = $2 WHERE logical = $1", logical, physical)
    version: int = await conn.fetchval(
        "UPDATE shard_catalog SET version = version + 1 RETURNING version"
    )
    return version
