"""Blobs in an S3 bucket (AWS S3, MinIO or any S3 API), through aiobotocore.

An upload streams into a multipart upload under a temporary key
(`incoming/<random>`) while the caller hashes it: parts of `part_size`
bytes, at most `parts_in_flight` of them being sent at once, so memory stays
flat whatever the size. Once its hash is known it is copied (server side)
under its content-addressed key, which is written once: a key that already
exists is left alone. An upload smaller than one part never leaves memory
until it is stored under its key.

Every way out of a failed or aborted upload aborts the multipart upload and
deletes the temporary object. When the store cannot be reached at that
moment, the clean-up is retried by the janitor (`run_janitor`), which also
sweeps any leftover older than a day (a crashed process's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from storage.blobs import (
    IMMUTABLE_CACHE_CONTROL,
    PUBLIC_KEY_PATTERN,
    BlobInfo,
    BlobNotFound,
    BlobStoreUnavailable,
    check_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
INCOMING = "incoming/"
MIN_PART = 5 * 1024 * 1024  # S3's floor for every part but the last
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Network failures, timeouts and server errors -> BlobStoreUnavailable."""
    try:
        yield
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500:
            raise BlobStoreUnavailable(f"S3: {exc}") from exc
        raise
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise BlobStoreUnavailable(f"S3 unreachable: {exc!r}") from exc


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code", "") in _NOT_FOUND


@contextlib.asynccontextmanager
async def open_s3_store(
    *,
    bucket: str,
    endpoint_url: str = "",
    part_size: int = 5 * 1024 * 1024,
    parts_in_flight: int = 2,
    connect_timeout: float = 3.0,
    read_timeout: float = 30.0,
    max_attempts: int = 2,
) -> AsyncIterator[S3BlobStore]:
    """A store over one client (its connection pool), closed on the way out.
    Credentials and region come from the usual AWS_* variables (or files)."""
    config = AioConfig(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Few tries: a store that is down should answer 503 soon, not after
        # botocore's default series of backoffs.
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max(10, parts_in_flight * 4),
        # No CRC of every part computed on the event loop (and not every S3
        # API knows the newer checksum headers); TLS and Content-MD5-free
        # parts are what AWS has always taken.
        request_checksum_calculation="when_required",
        # SigV4 everywhere, presigned URLs included (botocore would presign
        # with the legacy SigV2 for a custom endpoint; newer regions refuse it).
        signature_version="s3v4",
        response_checksum_validation="when_required",
    )
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=endpoint_url or None, config=config
    ) as client:
        yield S3BlobStore(
            client, bucket=bucket, part_size=part_size, parts_in_flight=parts_in_flight
        )


class S3BlobStore:
    __slots__ = ("_bucket", "_client", "_part_size", "_parts_in_flight", "_pending")

    def __init__(
        self, client: S3Client, *, bucket: str, part_size: int, parts_in_flight: int
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"S3 parts must be at least {MIN_PART} bytes")
        self._client = client
        self._bucket = bucket
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        # Clean-ups that failed (the store away): (temp key, upload id or None).
        self._pending: set[tuple[str, str | None]] = set()

    def __repr__(self) -> str:
        return (
            f"<S3BlobStore {self._bucket} parts={self._part_size}x{self._parts_in_flight}"
            f" pending={len(self._pending)}>"
        )

    @property
    def client(self) -> S3Client:
        return self._client

    @property
    def bucket(self) -> str:
        return self._bucket

    def writer(self) -> S3Writer:
        return S3Writer(self, part_size=self._part_size, parts_in_flight=self._parts_in_flight)

    async def put_bytes(self, key: str, data: bytes) -> bool:
        check_key(key)
        if await self.stat(key) is not None:
            return False  # content-addressed: the same bytes are there already
        public = PUBLIC_KEY_PATTERN.match(key) is not None
        with _unavailable():
            await self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                # What a CDN in front of the bucket passes on to browsers.
                ContentType="image/jpeg" if public else "application/octet-stream",
                CacheControl=IMMUTABLE_CACHE_CONTROL if public else "private, no-store",
            )
        return True

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        return await self._stat(key)

    async def _stat(self, s3_key: str) -> BlobInfo | None:
        try:
            with _unavailable():
                head = await self._client.head_object(Bucket=self._bucket, Key=s3_key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return BlobInfo(size=int(head["ContentLength"]))

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        check_key(key)
        return self._read(key, start, end)

    async def _read(
        self, s3_key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        if end is not None and end <= start:
            return
        args: dict[str, Any] = {"Bucket": self._bucket, "Key": s3_key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with _unavailable():
                response = await self._client.get_object(**args)
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(s3_key) from None
            raise
        body = response["Body"]
        try:
            while True:
                with _unavailable():
                    chunk = await body.read(CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            # A reader that stops early (a client hanging up) frees the connection.
            body.close()

    async def delete(self, key: str) -> None:
        check_key(key)
        with _unavailable():
            await self._client.delete_object(Bucket=self._bucket, Key=key)

    async def presigned_url(self, key: str, expires_in: int) -> str | None:
        check_key(key)
        # Signed here, with the credentials the client holds: no request to S3.
        return await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def ping(self) -> None:
        with _unavailable():
            await self._client.head_bucket(Bucket=self._bucket)

    # -- the upload's temporary object, and its clean-up -------------------------

    async def _promote(self, temp_key: str, key: str) -> bool:
        """The finished temporary object under its content-addressed key."""
        created = await self._stat(key) is None
        if created:
            with _unavailable():
                await self._client.copy_object(
                    Bucket=self._bucket,
                    Key=key,
                    CopySource={"Bucket": self._bucket, "Key": temp_key},
                )
        await self._discard(temp_key, None)
        return created

    async def _discard(self, temp_key: str, upload_id: str | None) -> None:
        """Abort the multipart upload and delete the temporary object; when the
        store does not answer, the janitor tries again later."""
        try:
            with _unavailable():
                if upload_id is not None:
                    with contextlib.suppress(ClientError):  # already gone
                        await self._client.abort_multipart_upload(
                            Bucket=self._bucket, Key=temp_key, UploadId=upload_id
                        )
                await self._client.delete_object(Bucket=self._bucket, Key=temp_key)
        except BlobStoreUnavailable as exc:
            log.warning("S3: cleaning up %s later: %s", temp_key, exc)
            self._pending.add((temp_key, upload_id))
        else:
            self._pending.discard((temp_key, upload_id))

    async def retry_cleanups(self) -> int:
        """Try the clean-ups that failed again; how many are still pending."""
        for temp_key, upload_id in list(self._pending):
            await self._discard(temp_key, upload_id)
        return len(self._pending)

    async def sweep(self, older_than: float = 86400.0) -> int:
        """Abort multipart uploads and delete temporary objects older than
        `older_than` seconds (left by a process that died); how many went."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        swept = 0
        with _unavailable():
            uploads = self._client.get_paginator("list_multipart_uploads")
            async for page in uploads.paginate(Bucket=self._bucket, Prefix=INCOMING):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        await self._discard(upload["Key"], upload["UploadId"])
                        swept += 1
            objects = self._client.get_paginator("list_objects_v2")
            async for listed in objects.paginate(Bucket=self._bucket, Prefix=INCOMING):
                for item in listed.get("Contents", []):
                    if item["LastModified"] < cutoff:
                        await self._discard(item["Key"], None)
                        swept += 1
        return swept

    async def run_janitor(
        self, *, retry_every: float = 2.0, sweep_every: float = 3600.0, max_age: float = 86400.0
    ) -> None:
        """Forever (a task of the app): retry failed clean-ups, sweep old leftovers."""
        next_sweep = time.monotonic()
        while True:
            try:
                if self._pending:
                    await self.retry_cleanups()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    swept = await self.sweep(max_age)
                    if swept:
                        log.info("S3: swept %d stale uploads", swept)
            except BlobStoreUnavailable as exc:
                log.warning("S3 janitor: %s", exc)
            await asyncio.sleep(retry_every)


class S3Writer:
    """One upload: a multipart upload under a temporary key, parts sent
    while the next ones arrive, at most `parts_in_flight` at once."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_completed",
        "_done",
        "_part_size",
        "_parts",
        "_slots",
        "_small",
        "_store",
        "_temp_key",
        "_upload_id",
    )

    def __init__(self, store: S3BlobStore, *, part_size: int, parts_in_flight: int) -> None:
        self._store = store
        self._part_size = part_size
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._temp_key = f"{INCOMING}{uuid.uuid4().hex}"
        self._upload_id: str | None = None
        self._parts: list[asyncio.Task[CompletedPartTypeDef]] = []
        self._slots = asyncio.Semaphore(parts_in_flight)
        self._small: bytes | None = None  # finished without a multipart upload
        self._completed = False
        self._done = False

    def __repr__(self) -> str:
        return f"<S3Writer {self._temp_key} parts={len(self._parts)}>"

    async def write(self, chunk: bytes) -> None:
        # Chunks are kept as they came and joined once per part: one copy of
        # each byte, not the two of a growing bytearray sliced into bytes.
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= self._part_size:
            data = b"".join(self._buffer)
            self._buffer.clear()
            rest = len(data) - self._part_size
            part = data[: self._part_size] if rest else data
            if rest:
                self._buffer.append(data[self._part_size :])
            self._buffered = rest
            del data
            await self._send(part)

    async def _send(self, part: bytes) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            with _unavailable():
                created = await client.create_multipart_upload(Bucket=bucket, Key=self._temp_key)
            self._upload_id = created["UploadId"]
        # Wait for a free slot: the reader of the body waits with us, so at most
        # `parts_in_flight` parts (and the one being filled) are in memory.
        await self._slots.acquire()
        for task in self._parts:
            failed = task.exception() if task.done() else None
            if failed is not None:
                self._slots.release()
                raise failed
        number = len(self._parts) + 1
        self._parts.append(asyncio.create_task(self._upload_part(number, part)))

    async def _upload_part(self, number: int, data: bytes) -> CompletedPartTypeDef:
        assert self._upload_id is not None
        try:
            with _unavailable():
                sent = await self._store.client.upload_part(
                    Bucket=self._store.bucket,
                    Key=self._temp_key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=data,
                )
            return {"PartNumber": number, "ETag": sent["ETag"]}
        finally:
            self._slots.release()

    async def finish(self) -> None:
        rest = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._upload_id is None:
            self._small = rest
            return
        if rest:
            await self._send(rest)
        parts = await asyncio.gather(*self._parts)
        with _unavailable():
            await self._store.client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._temp_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._completed = True

    async def read(self) -> AsyncGenerator[bytes, None]:
        if self._small is not None:
            for at in range(0, len(self._small), CHUNK):
                yield self._small[at : at + CHUNK]
            return
        if not self._completed:
            raise RuntimeError("read() before finish()")
        async with contextlib.aclosing(self._store._read(self._temp_key)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def commit(self, key: str) -> bool:
        check_key(key)
        if self._small is not None:
            created = await self._store.put_bytes(key, self._small)
        elif self._completed:
            created = await self._store._promote(self._temp_key, key)
        else:
            raise RuntimeError("commit() before finish()")
        self._done = True
        return created

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        self._buffered = 0
        self._small = None
        for task in self._parts:
            task.cancel()
        # Let the cancelled sends end before the upload is aborted under them.
        await asyncio.gather(*self._parts, return_exceptions=True)
        if self._upload_id is not None:
            await self._store._discard(self._temp_key, None if self._completed else self._upload_id)
