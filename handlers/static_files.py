"""The `/static` folder, served by aiohttp's own static resource, with one
fault of it closed: a name the file system refuses (too long, for one)
raised an `OSError` past the handler, a 500. Any name the client made up
that the file system cannot look up is simply not there: 404.
"""

from __future__ import annotations

from aiohttp import web


class StaticFiles(web.StaticResource):
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._handle(request)
        except OSError:  # PermissionError is already a 403 inside aiohttp
            raise web.HTTPNotFound() from None
