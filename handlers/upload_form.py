"""Reading an upload's multipart body as a stream, for the API and the upload page.

The `file` part goes chunk by chunk into a `StagedUpload` (hashed, counted,
cut off at the limit); the small text parts are read with their own caps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import BodyPartReader, ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from handlers.slow_clients import allow_slow_body
from picshare import keys
from picshare.errors import TimedOut, TooLarge, UnsupportedMedia, invalid
from picshare.staging import StagedUpload

# idempotency_key: the upload page's own key (a double-click makes one photo).
TEXT_FIELDS = ("caption", "tags", "csrf_token", "idempotency_key")
MAX_TEXT_BYTES = 16 * 1024
MAX_PARTS = 5  # file, caption, tags, csrf_token, idempotency_key
# Room for the multipart framing and the text fields around the file.
FRAMING_SLACK = 64 * 1024


@dataclass(slots=True)
class UploadForm:
    caption: str = ""
    tags: str = ""
    csrf_token: str | None = None
    idempotency_key: str | None = None
    has_file: bool = False


async def receive_upload(request: web.Request, staged: StagedUpload) -> UploadForm:
    settings = request.app[keys.SETTINGS].uploads
    if request.content_length is not None and (
        request.content_length > settings.max_bytes + FRAMING_SLACK
    ):
        # Refuse before reading a byte of it.
        raise TooLarge(f"the file is larger than {settings.max_bytes} bytes", field="file")
    if request.content_type != "multipart/form-data":
        raise UnsupportedMedia("the body must be multipart/form-data", field="body")
    # A file may take longer to arrive than the server's body bound.
    allow_slow_body(request, settings.read_timeout)
    try:
        # One deadline for the whole body: a client dripping bytes forever
        # would otherwise hold a connection and a spool file.
        async with asyncio.timeout(settings.read_timeout):
            return await _read_parts(request, staged, settings.chunk_bytes)
    except TimeoutError:
        raise TimedOut("the upload took too long; try again", field="file") from None
    except (ValueError, AssertionError, ClientPayloadError, HttpProcessingError):
        # aiohttp's multipart reader says "malformed" with these.
        raise invalid("body", "is not a well-formed multipart body") from None


async def _read_parts(request: web.Request, staged: StagedUpload, chunk: int) -> UploadForm:
    reader = await request.multipart()
    form = UploadForm()
    for _ in range(MAX_PARTS + 1):
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise invalid("body", "nested multipart bodies are not accepted")
        if part.name == "file":
            if form.has_file:
                raise invalid("file", "send one file per upload")
            form.has_file = True
            while data := await part.read_chunk(chunk):
                await staged.write(data)
            await staged.finish()
        elif part.name in TEXT_FIELDS:
            setattr(form, part.name, await _read_text(part))
        else:
            # Unknown parts are refused, not skipped: skipping would read
            # them, unbounded, past every limit.
            raise invalid(part.name or "body", "is not a field of an upload")
    else:
        raise invalid("body", f"at most {MAX_PARTS} form fields")
    if not form.has_file:
        raise invalid("file", "is required")
    return form


async def _read_text(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(4096):
        data += chunk
        if len(data) > MAX_TEXT_BYTES:
            raise invalid(part.name or "field", f"must be at most {MAX_TEXT_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(part.name or "field", "must be UTF-8 text") from None
