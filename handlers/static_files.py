"""The `/static` folder, served by aiohttp's own static resource, with one
fault of it closed: a name the file system refuses (too long, for one)
raised an `OSError` past the handler, a 500. Any name the client made up
that the file system cannot look up is simply not there: 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StaticFiles(web.StaticResource):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the routes run (they hold `_handle`): the files themselves,
        # until `layer` puts the request layer around them.
        self._run: Handler = self._serve

    def layer(self, wrap: Callable[[Handler], Handler]) -> None:
        self._run = wrap(self._serve)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await self._run(request)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._handle(request)
        except OSError:  # PermissionError is already a 403 inside aiohttp
            raise web.HTTPNotFound() from None
