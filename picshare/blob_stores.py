"""The one place the blob store is chosen from settings (`blobs.backend`):
local files under <data_dir>/blobs, or an S3 bucket. The app factory and the
command line open it the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from picshare.config import S3Settings, Settings
from storage.blobs import BlobStore
from storage.local_blobs import LocalBlobStore
from storage.s3_blobs import S3BlobStore, open_s3_store


def local_store(settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(Path(settings.data_path) / "blobs")


@contextlib.asynccontextmanager
async def open_s3(settings: S3Settings) -> AsyncIterator[S3BlobStore]:
    async with open_s3_store(
        bucket=settings.bucket,
        endpoint_url=settings.endpoint_url,
        part_size=settings.part_size,
        parts_in_flight=settings.parts_in_flight,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_attempts=settings.max_attempts,
    ) as store:
        yield store


@contextlib.asynccontextmanager
async def open_blob_store(settings: Settings, *, janitor: bool = False) -> AsyncIterator[BlobStore]:
    """The configured store; with `janitor`, S3's clean-up task runs while it is open."""
    if settings.blobs.backend != "s3":
        yield local_store(settings)
        return
    async with open_s3(settings.s3) as store:
        if not janitor:
            yield store
            return
        task = asyncio.create_task(store.run_janitor())
        try:
            yield store
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
