"""Content-addressed files under <data_dir>/blobs.

Writes go to a temporary name in the same filesystem (`.spool`), are
fsynced, then renamed into place, so a reader (or a crash) never sees half a
file. File I/O runs in the default executor: nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO

from storage.blobs import KEY_PATTERN, BlobInfo, BlobNotFound, check_key

CHUNK = 256 * 1024


class LocalBlobStore:
    __slots__ = ("_root", "_spool")

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._spool = self._root / ".spool"
        self._spool.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LocalBlobStore {self._root}>"

    def writer(self) -> LocalWriter:
        return LocalWriter(self)

    def path_of(self, key: str) -> Path:
        check_key(key)
        prefix, _, name = key.partition("/")
        # Two levels of fan-out keep directories small at millions of files.
        return self._root / prefix / name[:2] / name[2:4] / name

    def spool_file(self) -> tuple[BinaryIO, Path]:
        fd, name = tempfile.mkstemp(dir=self._spool, prefix="upload-")
        return os.fdopen(fd, "wb"), Path(name)

    def keys(self) -> list[str]:
        """Every stored key (a walk of the folders: blocking, for a thread)."""
        found = []
        for prefix in ("uploads", "r"):
            for path in (self._root / prefix).rglob("*"):
                key = f"{prefix}/{path.name}"
                if path.is_file() and KEY_PATTERN.match(key):
                    found.append(key)
        return sorted(found)

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
            try:
                chunk = await asyncio.to_thread(_read_at, path, position, size)
            except FileNotFoundError:
                raise BlobNotFound(key) from None
            if not chunk:
                break
            position += len(chunk)
            yield chunk

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)

    async def presigned_url(self, key: str, expires_in: int) -> str | None:
        return None  # only this server reads these files

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


class LocalWriter:
    """An upload streamed to a spool file; committing it is a rename."""

    __slots__ = ("_fh", "_path", "_store")

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        self._fh: BinaryIO | None = None
        self._path: Path | None = None

    def __repr__(self) -> str:
        return f"<LocalWriter {self._path}>"

    def _finished(self) -> Path:
        if self._path is None or self._fh is not None:
            raise RuntimeError("the upload is not finished (or already committed)")
        return self._path

    async def write(self, chunk: bytes) -> None:
        fh = self._fh
        if fh is None:
            opened = await asyncio.to_thread(self._store.spool_file)
            fh, self._fh, self._path = opened[0], opened[0], opened[1]
        await asyncio.to_thread(fh.write, chunk)

    async def finish(self) -> None:
        """Fsynced here, before any database transaction, so storing it later is only a rename."""
        if self._path is None:
            self._fh, self._path = await asyncio.to_thread(self._store.spool_file)
        if self._fh is not None:
            fh, self._fh = self._fh, None
            await asyncio.to_thread(_close_synced, fh)

    async def read(self) -> AsyncGenerator[bytes, None]:
        path = self._finished()
        position = 0
        while chunk := await asyncio.to_thread(_read_at, path, position, CHUNK):
            position += len(chunk)
            yield chunk

    async def commit(self, key: str) -> bool:
        created = await self._store.put_file(key, self._finished())
        self._path = None
        return created

    async def abort(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            await asyncio.to_thread(fh.close)
        if self._path is not None:
            path, self._path = self._path, None
            await asyncio.to_thread(path.unlink, missing_ok=True)


def _close_synced(fh: BinaryIO) -> None:
    try:
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()
