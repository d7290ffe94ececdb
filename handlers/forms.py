"""Reading an HTML form's text fields: the one reader every page form uses.

Browsers send `application/x-www-form-urlencoded` (multipart only for the
upload form, which streams its file through `upload_form.py`); multipart
text fields are read here too. A body this reader cannot take is the
client's fault, so it answers a 4xx naming `body`, as the API does, never a
500 from inside a parser: malformed 400, too large 413, another media type
or charset 415. It runs before the CSRF token is checked, so each page's
answer to a bad body is the same whoever sends it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from picshare.errors import TooLarge, UnsupportedMedia, invalid

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# The largest form a page has is a 2,200-character comment; percent-encoded
# UTF-8 takes up to 9 bytes a character.
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 32
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


async def read_fields(request: web.Request) -> dict[str, str]:
    """The form's text fields (the last of a repeated name wins); file parts are
    dropped. A POST without a body has no fields."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise _too_large()  # before reading a byte of it
    kind = request.content_type
    if kind == URLENCODED:
        charset = (request.charset or "utf-8").lower()
        if charset not in _CHARSETS:
            raise UnsupportedMedia("a form must be sent as UTF-8", field="body")
        return _parse_urlencoded(await _read_body(request))
    if kind == MULTIPART:
        return await _read_multipart(request)
    if not request.body_exists or request.content_length == 0:
        return {}
    raise UnsupportedMedia(f"a form must be {URLENCODED} or {MULTIPART}", field="body")


def _too_large() -> TooLarge:
    return TooLarge(f"a form is at most {MAX_FORM_BYTES} bytes", field="body")


async def _read_body(request: web.Request) -> bytes:
    # Chunked bodies have no Content-Length: count as they arrive.
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _too_large()
    return bytes(body)


def _parse_urlencoded(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise invalid("body", "is not UTF-8 text") from None
    except ValueError:  # more than max_num_fields
        raise invalid("body", f"has more than {MAX_FIELDS} fields") from None
    return _checked(dict(pairs))


async def _read_multipart(request: web.Request) -> dict[str, str]:
    try:
        reader = await request.multipart()  # ValueError without a boundary
        fields: dict[str, str] = {}
        size = 0
        for _ in range(MAX_FIELDS):
            part = await reader.next()
            if part is None:
                return _checked(fields)
            if not isinstance(part, BodyPartReader):
                raise invalid("body", "nested multipart bodies are not accepted")
            data = bytearray()
            while chunk := await part.read_chunk(8192):
                size += len(chunk)
                if size > MAX_FORM_BYTES:
                    raise _too_large()
                data += chunk
            if part.name and part.filename is None:
                fields[part.name] = _text(part.name, bytes(data))
        raise invalid("body", f"has more than {MAX_FIELDS} fields")
    except (ValueError, AssertionError, ClientPayloadError, HttpProcessingError):
        # What aiohttp's multipart reader raises for a malformed body.
        raise invalid("body", "is not a well-formed multipart body") from None


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(name, "is not UTF-8 text") from None


def _checked(fields: dict[str, str]) -> dict[str, str]:
    # NUL is never part of what a person types, and PostgreSQL text cannot
    # hold it: refused here rather than deep in a query.
    for name, value in fields.items():
        if "\x00" in value or "\x00" in name:
            raise invalid(name.replace("\x00", "") or "body", "must not contain NUL characters")
    return fields
