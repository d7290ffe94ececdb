"""JSON in and out: orjson, bounded request bodies, clear errors for bad JSON."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from picshare.errors import FieldError, InvalidInput, TooLarge, invalid
from storage.scope import rendered

MAX_JSON_BYTES = 64 * 1024


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    started = time.perf_counter()
    body = orjson.dumps(data)
    rendered(time.perf_counter() - started)  # Server-Timing's "render"
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx problem naming what is wrong."""
    if request.content_type != "application/json":
        raise invalid("body", "must be application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise TooLarge(f"the body is larger than {MAX_JSON_BYTES} bytes", field="body")
    # read() gathers the whole body (bounded by the app's client_max_size);
    # content.read(n) would return only what has arrived so far.
    raw = await request.read()
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge(f"the body is larger than {MAX_JSON_BYTES} bytes", field="body")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([FieldError("body", f"is not valid JSON ({exc.msg})")]) from None
    if not isinstance(data, dict):
        raise invalid("body", "must be a JSON object")
    return data
