"""How long sent events and consumers' records are kept: long enough that a
redelivery (a relay that died before its commit, a replayed dead letter)
still finds its record, not forever. An unsent event is never dropped."""

from __future__ import annotations

import asyncio
import logging

from storage import outbox_repo
from storage.shards import Shards

log = logging.getLogger(__name__)


async def prune(db: Shards, *, retention_seconds: float) -> tuple[int, int]:
    """Once, on every database; one that is down is pruned next time."""
    events = records = 0
    for part in db.everything():
        try:
            async with part.transaction() as conn:
                gone = await outbox_repo.prune(conn, older_than_seconds=retention_seconds)
        except Exception as exc:
            log.warning("outbox retention: %s skipped: %r", part.primary.label, exc)
            continue
        events, records = events + gone[0], records + gone[1]
    return events, records


async def prune_forever(db: Shards, *, retention_seconds: float, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        events, records = await prune(db, retention_seconds=retention_seconds)
        if events or records:
            log.info("outbox retention: %d sent events, %d records forgotten", events, records)
