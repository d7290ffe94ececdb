"""`/graphql`: strawberry's aiohttp view, behind PicShare's middleware chain.

The chain already did what REST gets: the caller's bearer token or session
cookie (with the CSRF header on cookie-authenticated POSTs, queries
included: a cross-site form cannot send it), the rate limit, errors as
problem details for what never reaches GraphQL. Here: the resolvers'
context, errors in the `errors` array with `extensions.code`, the WebSocket
handshake authenticated as `/ws` authenticates it (ws/handler.py: the Origin
rule for cookie-authenticated sockets, `?token=` for browsers), and the
GraphiQL page for browsers (handlers/graphql/graphiql.py). A compiled query
asked plainly takes a shorter way through (`_compiled_query`)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from handlers import problems
from handlers.graphql import errors, graphiql
from handlers.graphql.context import Context, context_of
from handlers.graphql.schema import SCHEMA
from picshare import keys
from ws import handler as ws_handler

# What a plain query request may carry; Accept values that ask for a stream.
_REQUEST_KEYS = frozenset({"query", "variables", "operationName"})
_STREAMING = re.compile(r"text/event-stream|multipart/mixed", re.IGNORECASE)


class PicShareGraphQLView(GraphQLView[Context, None]):
    def __init__(self) -> None:
        super().__init__(
            SCHEMA,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        compiled = await self._compiled_query(request)
        if compiled is not None:
            return compiled
        if request.method == "GET" and self.is_websocket_request(request):
            # Refused with a 401/403 problem before the upgrade, like /ws.
            request[keys.USER] = await ws_handler.authenticate(request)
            if keys.CREDENTIAL not in request:  # `?token=`: checked again per operation
                request[keys.CREDENTIAL] = request.query["token"]
                request[keys.AUTH_KIND] = "bearer"
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            # What strawberry refuses before running anything (no query, a body
            # that is not JSON, a mutation over GET): problem details, as REST.
            return problems.problem(exc.status_code, exc.reason, instance=request.rel_url.raw_path)

    async def _compiled_query(self, request: web.Request) -> web.Response | None:
        """A query the schema compiled (handlers/graphql/compiled.py), asked
        plainly (GET with `?query=`, or a JSON POST), answered without the
        view's general machinery (the WebSocket probe, content negotiation,
        a sub-response per request); None for anything else, which the view
        answers as before, errors included."""
        if "Upgrade" in request.headers or _STREAMING.search(request.headers.get("Accept", "")):
            return None
        allowed: tuple[OperationType, ...] | None = None
        try:
            if request.method == "GET":
                params = request.query
                if set(params) - _REQUEST_KEYS:
                    return None
                query: Any = params.get("query")
                raw = params.get("variables")
                variables: Any = None if raw is None else orjson.loads(raw)
                name: Any = params.get("operationName")
                allowed = (OperationType.QUERY,)
            elif request.method == "POST" and request.content_type == "application/json":
                data = orjson.loads(await request.read())
                if not isinstance(data, dict) or set(data) - _REQUEST_KEYS:
                    return None
                query, variables = data.get("query"), data.get("variables")
                name = data.get("operationName")
            else:
                return None
        except orjson.JSONDecodeError:
            return None
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(name, str | None)
            or SCHEMA.plans.get(query, name, request.app[keys.SETTINGS].graphql.document_cache)
            is None
        ):
            return None
        result = await SCHEMA.execute(query, variables, context_of(request), None, name, allowed)
        body = orjson.dumps(await self.process_result(request, result))
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    def is_websocket_origin_allowed(self, request: web.Request, origin: str) -> bool:
        # ws_handler.authenticate applied PicShare's rule already: a foreign
        # Origin matters only with the session cookie, and was refused then.
        return True

    async def get_context(self, request: web.Request, response: Any) -> Context:
        if isinstance(response, web.WebSocketResponse):
            return Context(request, request.get(keys.USER), socket=True)
        return context_of(request)

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return graphiql.page(request)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: the view sends bytes as binary WebSocket frames,
        # which graphql-transport-ws clients refuse.
        return orjson.dumps(data).decode()

    async def process_result(
        self, request: web.Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        body: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            body["errors"] = [errors.formatted(e) for e in result.errors]
        if result.extensions:
            body["extensions"] = result.extensions
        return body


# One view per process: the schema is built once (handlers/graphql/schema.py).
VIEW = PicShareGraphQLView()


async def graphql(request: web.Request) -> web.StreamResponse:
    return await VIEW(request)
