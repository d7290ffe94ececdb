"""The baseline for the request benchmark: aiohttp on uvloop, one constant JSON, no access log.

python -m bench.bare_server --port P

It answers the paths the benchmark requests from PicShare, so the only
difference left is what PicShare does per request (middlewares, database,
serialisation).
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

BODY = b'{"id":"1","status":"ready","caption":"constant"}'


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", constant)
    app.router.add_get("/api/v1/photos", constant)
    app.router.add_get("/api/v1/photos/{id}", constant)
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
