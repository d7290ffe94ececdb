"""Serving renditions: immutable, content-addressed, with strong ETags, 304 and Range.

With a CDN configured, a private photo's signed URL redirects to the blob
store's own expiring URL (a presigned S3 URL) when it has one.

The key names the content, so the ETag is the content hash itself and the
object may be cached forever.
"""

from __future__ import annotations

import contextlib
import re

from aiohttp import web

from handlers.middlewares import security_headers
from handlers.problems import problem
from picshare import keys
from storage.blobs import IMMUTABLE_CACHE_CONTROL, PUBLIC_KEY_PATTERN

_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


async def serve_media(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    if not PUBLIC_KEY_PATTERN.match(key):
        raise web.HTTPNotFound()
    cache = IMMUTABLE_CACHE_CONTROL
    if not await request.app[keys.PHOTOS].media_is_public(key):
        # A private account's (or an unready) photo: only with a valid signature,
        # and 404 otherwise, so a stranger cannot tell it exists.
        remaining = request.app[keys.MEDIA_URLS].verify(
            key, request.query.get("exp"), request.query.get("sig")
        )
        if not remaining:
            raise web.HTTPNotFound()
        cache = f"private, max-age={remaining}"
        if request.app[keys.SETTINGS].media.cdn_url:
            # Media are served by others (a CDN, the store): the store's own
            # expiring URL, when it has one, sends the bytes straight from it.
            direct = await request.app[keys.BLOBS].presigned_url(key, remaining)
            if direct is not None:
                raise web.HTTPFound(direct, headers={"Cache-Control": "private, no-store"})
    store = request.app[keys.BLOBS]
    info = await store.stat(key)
    if info is None:
        raise web.HTTPNotFound()
    etag = '"' + key.removeprefix("r/").removesuffix(".jpg") + '"'
    headers = {"Cache-Control": cache, "ETag": etag, "Accept-Ranges": "bytes"}
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    start, end, status = 0, info.size, 200
    range_header = request.headers.get("Range", "")
    # RFC 9110: a range unit we do not know is ignored (the whole body), and a
    # stale If-Range means the whole body too.
    if range_header.startswith("bytes=") and _etag_matches(
        request.headers.get("If-Range", etag), etag
    ):
        parsed = _parse_range(range_header, info.size)
        if parsed is None:
            return problem(
                416,
                f"the range is outside the {info.size} bytes of this file",
                headers={"Content-Range": f"bytes */{info.size}", "Accept-Ranges": "bytes"},
            )
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = "image/jpeg"
    response.content_length = end - start
    response.headers["X-Request-ID"] = request[keys.REQUEST_ID]
    security_headers(response.headers)  # prepared here, before the middleware sees it
    await response.prepare(request)
    if request.method != "HEAD":
        # aclosing: a client that hangs up mid-stream must not leak the open file.
        async with contextlib.aclosing(store.read(key, start, end)) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
    await response.write_eof()
    return response


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end); None when it cannot be satisfied.
    Multiple ranges are answered with the whole first range only (allowed by RFC 9110)."""
    match = _RANGE.fullmatch(header.split(",")[0].strip())
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "":
        if last == "" or int(last) == 0:
            return None
        return max(0, size - int(last)), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return None
    return start, end
