"""The reference for the request benchmark: a bare aiohttp handler on uvloop.

python -m bench.bare_server --port P --photo FILE --list FILE

It answers the two paths the benchmark loads with the very bytes PicShare
answered them with (read from the files), as `application/json`, with no
middleware and no access log: what is left of PicShare's cost above it is
what PicShare does per request.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler


def constant(body: bytes) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--photo", type=Path, help="the body of GET /api/v1/photos/{id}")
    parser.add_argument("--list", type=Path, help="the body of GET /api/v1/photos")
    args = parser.parse_args()
    small = b'{"id":"1","status":"ready","caption":"constant"}'
    photo = args.photo.read_bytes() if args.photo else small
    listing = args.list.read_bytes() if args.list else small
    app = web.Application()
    app.router.add_get("/healthz", constant(b'{"status":"ok"}'))
    app.router.add_get("/api/v1/photos", constant(listing))
    app.router.add_get("/api/v1/photos/{id}", constant(photo))
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
