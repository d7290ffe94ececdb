"""The GraphiQL page (placeholder until the assets are served)."""

from __future__ import annotations

from aiohttp import web


def page(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>GraphiQL</title>", content_type="text/html")
