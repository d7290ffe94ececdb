"""What the resolvers of one request share: who asks, the services, the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from handlers.graphql.loaders import Loaders
from picshare import keys
from picshare.errors import InvalidInput, Unauthenticated, invalid
from picshare.pagination import parse_limit
from storage.records import UserRecord


@dataclass(slots=True)
class Context:
    request: web.Request
    viewer: UserRecord | None
    # A graphql-transport-ws connection's: one context for all its operations.
    socket: bool = False
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.request.app, self.viewer_id)

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def viewer_id(self) -> int | None:
        return None if self.viewer is None else self.viewer.id

    async def renew(self) -> None:
        """Before each operation over a socket, as if it came as a request of
        its own: the credential that opened the socket is checked again (signed
        out since: UNAUTHENTICATED), and the loaders start empty, so that no
        operation answers from what an earlier one read."""
        request = self.request
        credential = request.get(keys.CREDENTIAL)
        kind = "session" if request.get(keys.AUTH_KIND) == "session" else "api"
        users = self.app[keys.USERS]
        viewer = None if credential is None else await users.authenticate(credential, kind)
        if viewer is None:
            raise Unauthenticated("signed out since this socket opened: sign in and connect again")
        self.viewer = viewer
        self.loaders = Loaders(self.app, viewer.id)

    def require_viewer(self) -> UserRecord:
        if self.viewer is None:
            raise Unauthenticated("sign in first: send 'Authorization: Bearer <token>'")
        return self.viewer

    def page_size(self, first: int | None) -> int:
        """`first` as REST's `?limit=` is read: the default when absent, at most the maximum."""
        p = self.app[keys.SETTINGS].pagination
        raw = None if first is None else str(first)
        try:
            return parse_limit(raw, default=p.default_limit, maximum=p.max_limit)
        except InvalidInput:
            raise invalid("first", f"must be a whole number from 1 to {p.max_limit}") from None


def context_of(request: web.Request) -> Context:
    return Context(request, request.get(keys.USER))
