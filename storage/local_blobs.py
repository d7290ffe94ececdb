"""Content-addressed files under <data_dir>/blobs.

Writes go to a temporary name in the same filesystem, are fsynced, then
renamed into place, so a reader (or a crash) never sees half a file. File
I/O runs in the default executor: nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path

from storage.blobs import BlobInfo, check_key

CHUNK = 256 * 1024


class LocalBlobStore:
    __slots__ = ("_root", "_spool")

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._spool = self._root / ".spool"
        self._spool.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LocalBlobStore {self._root}>"

    def spool_dir(self) -> Path:
        return self._spool

    def path_of(self, key: str) -> Path:
        check_key(key)
        prefix, _, name = key.partition("/")
        # Two levels of fan-out keep directories small at millions of files.
        return self._root / prefix / name[:2] / name[2:4] / name

    async def put_file(self, key: str, path: Path) -> bool:
        """Move an already fsynced local file into place (a rename, then a directory fsync)."""
        return await asyncio.to_thread(self._put_file, key, path)

    def _put_file(self, key: str, path: Path) -> bool:
        dest = self.path_of(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        created = not dest.exists()
        os.replace(path, dest)
        _fsync_dir(dest.parent)
        return created

    async def put_bytes(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> bool:
        fd, tmp = tempfile.mkstemp(dir=self._spool, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return self._put_file(key, Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            st = await asyncio.to_thread(os.stat, self.path_of(key))
        except FileNotFoundError:
            return None
        return BlobInfo(size=st.st_size)

    async def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        path = self.path_of(key)
        position = start
        while end is None or position < end:
            size = CHUNK if end is None else min(CHUNK, end - position)
            # Each chunk opens, reads and closes in one thread call: no file
            # handle lives across an await, so a cancelled reader leaks nothing.
            chunk = await asyncio.to_thread(_read_at, path, position, size)
            if not chunk:
                break
            position += len(chunk)
            yield chunk

    async def local_copy(self, key: str) -> Path:
        # Already local: the workers open the stored file itself.
        path = self.path_of(key)
        if not await asyncio.to_thread(path.exists):
            raise FileNotFoundError(key)
        return path

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)

    async def ping(self) -> None:
        await asyncio.to_thread(_check_writable, self._spool)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_writable(path: Path) -> None:
    if not os.access(path, os.W_OK):
        raise OSError(f"{path} is not writable")


def _read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
