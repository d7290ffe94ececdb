"""Copying a local blob store to another store (`run.py blobs migrate --to s3`).

Resumable: a key already in the target with the same size is skipped (keys
name their content, so same key and size is the same object), so a copy
stopped halfway picks up where it was. Each object streams through a
`BlobWriter`, so a large upload never sits whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from storage.blobs import BlobStore
from storage.local_blobs import LocalBlobStore


@dataclass(frozen=True, slots=True)
class MigrationReport:
    copied: int
    skipped: int
    bytes_copied: int


async def migrate_blobs(
    source: LocalBlobStore,
    target: BlobStore,
    *,
    concurrency: int = 4,
    on_total: Callable[[int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> MigrationReport:
    keys = await asyncio.to_thread(source.keys)
    if on_total is not None:
        on_total(len(keys))
    copied = skipped = size = done = 0
    pending = iter(keys)

    async def copy_some() -> None:
        # `concurrency` of these share one iterator: that many copies at once.
        for key in pending:
            await copy(key)

    async def copy(key: str) -> None:
        nonlocal copied, skipped, size, done
        here = await source.stat(key)
        there = await target.stat(key)
        if here is None or (there is not None and there.size == here.size):
            skipped += 1
        else:
            writer = target.writer()
            try:
                async with contextlib.aclosing(source.read(key)) as chunks:
                    async for chunk in chunks:
                        await writer.write(chunk)
                await writer.finish()
                await writer.commit(key)
            finally:
                await writer.abort()  # nothing after a commit
            copied += 1
            size += here.size
        done += 1
        if on_done is not None:
            on_done(done)

    await asyncio.gather(*(copy_some() for _ in range(concurrency)))
    return MigrationReport(copied=copied, skipped=skipped, bytes_copied=size)
