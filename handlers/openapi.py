"""The OpenAPI 3.1 document, built from the route table so it always matches."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

import picshare
from handlers.routes_meta import SCHEMAS

if TYPE_CHECKING:
    from handlers.routes import Route

_STRING = {"type": "string"}
_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "cursor": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": "^[A-Za-z0-9_-]+$",
        "description": "next_cursor of the previous page",
    },
    "user": {"type": "string", "description": "only this user's photos"},
    "tag": {"type": "string", "description": "only photos with this tag"},
    "q": {"type": "string", "maxLength": 100, "description": "what to look for"},
    "query": {"type": "string", "description": "a GraphQL query (not a mutation)"},
    "variables": {"type": "string", "description": "its variables, a JSON object"},
    "operationName": {"type": "string", "description": "which operation of the query"},
    "since": {
        "type": "string",
        "pattern": "^[0-9]{1,19}$",
        "description": "replay notifications newer than this id first",
    },
    "token": {
        "type": "string",
        "description": "a bearer token, for clients that cannot set headers",
    },
    "exp": {"type": "string", "description": "a signed media URL's expiry"},
    "sig": {"type": "string", "description": "a signed media URL's signature"},
    "view": {"type": "string", "description": "'new': the newest public photos, not the feed"},
    "next": {"type": "string", "description": "a local path to go to after logging in"},
    "saved": {"type": "string", "description": "'1': say that the settings were saved"},
    "done": {"type": "string", "description": "'topup' or 'tip': say what the form did"},
}


def template_path(path: str) -> str:
    """aiohttp's `/media/{key:r/[0-9a-f]{64}\\.jpg}` as OpenAPI's `/media/{key}`.
    Counts brace depth, because a parameter's regex may hold braces of its own."""
    out: list[str] = []
    depth = 0
    in_name = False
    for ch in path:
        if ch == "{":
            depth += 1
            if depth == 1:
                out.append(ch)
                in_name = True
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                out.append(ch)
                continue
        if depth == 0:
            out.append(ch)
        elif depth == 1 and in_name:
            if ch == ":":
                in_name = False
            else:
                out.append(ch)
    return "".join(out)


def build_spec(app: web.Application) -> dict[str, Any]:
    from handlers.routes import ROUTES  # it imports the handlers, which import this

    paths: dict[str, dict[str, Any]] = {
        "/static/{filename}": {
            "get": {
                "operationId": "static",
                "summary": "Stylesheets and other static assets (versioned URLs)",
                "tags": ["pages"],
                "parameters": [
                    {
                        "name": "filename",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                # aiohttp answers a missing file itself, with an empty body.
                "responses": {"200": {"description": "The file"}, "404": {"description": "None"}},
            }
        }
    }
    for route in ROUTES:
        for path in (route.path, *route.aliases):
            clean = template_path(path)
            paths.setdefault(clean, {})[route.method.lower()] = _operation(route, path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PicShare API",
            "version": picshare.__version__,
            "description": "Photo sharing over REST. Errors are RFC 9457 problem details; "
            "lists use opaque cursor pagination; IDs are strings.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "picshare_session"},
                "moderation": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the moderation token (PICSHARE_MODERATION_TOKEN)",
                },
            },
        },
    }


def _operation(route: Route, raw: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name + ("" if raw == route.path else ".alias"),
        "summary": route.summary,
        "tags": [route.tag],
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([a-z_]+)\}", template_path(raw))
    ]
    params += [_query_parameter(name, name in route.required_query) for name in route.query]
    if _takes_idempotency_key(route):
        params.append(_idempotency_header(route.idempotency == "required"))
    if params:
        op["parameters"] = params
    if route.security:
        op["security"] = [{route.security: []}]
    elif route.auth:
        op["security"] = [{"bearer": []}, {"session": []}]
    if route.body == "multipart":
        op["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/Upload"}}},
        }
    elif route.body and not route.in_api:
        # A page form: browsers send it urlencoded; forms.py reads multipart too.
        media: tuple[str, ...] = ("multipart/form-data",)
        if route.body != "UploadForm":
            media = ("application/x-www-form-urlencoded", *media)
        op["requestBody"] = {
            "required": True,
            "content": {m: {"schema": _ref(route.body)} for m in media},
        }
    elif route.body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    op["responses"] = _page_responses(route) if not route.in_api else _api_responses(route, raw)
    for status in sorted(_common_errors(route)):
        op["responses"].setdefault(str(status), _PROBLEM if route.in_api else _PAGE_ERROR)
    return op


def _query_parameter(name: str, required: bool) -> dict[str, Any]:
    schema = _QUERY[name]
    if required:
        # Blank is as good as missing: `\S` asks for one character that is not.
        schema = {**schema, "minLength": 1, "pattern": r"\S"}
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _takes_idempotency_key(route: Route) -> bool:
    """As handlers/route_info.py resolves it: unsafe API routes that read credentials."""
    return (
        route.in_api
        and route.surface == "api"
        and route.credentials
        and route.method not in ("GET", "HEAD")
        and route.idempotency != "none"
    )


def _idempotency_header(required: bool) -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": required,
        "description": "1-255 printable ASCII characters, per user, kept 24 h: a retry with "
        "the same key and request replays the first answer (with `Idempotent-Replayed: "
        "true`); another request under the key is 422; while the first still runs, 409. "
        "Ignored on anonymous requests.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    }


def _common_errors(route: Route) -> set[int]:
    """Statuses that come from the middlewares or the request's shape rather
    than from the handler: every route that reads them may answer them."""
    errors: set[int] = set()
    if route.credentials:
        errors.add(401)  # a bad `Authorization` header, on any route that reads it
    if route.limit != "none":
        errors.add(429)  # every other route class has a rate-limit policy
    if {"limit", "cursor"} & set(route.query) or route.required_query:
        errors.add(400)
    if route.body and not route.in_api:
        errors.update((400, 403, 413, 415))  # forms.py, then the CSRF token
    elif route.auth and route.method != "GET":
        errors.add(403)  # cookie sessions without the CSRF header
    if route.body and route.body != "multipart":
        errors.add(413)  # JSON bodies over 64 KiB
    if _takes_idempotency_key(route):
        errors.update((400, 409, 422))  # a bad key; the key's request running; reused
    return errors


def _page_responses(route: Route) -> dict[str, Any]:
    """A page: HTML for browsers. Its errors are an error page for browsers
    (or the form again, with the error by its field) and problem details for
    other clients."""
    responses: dict[str, Any] = {}
    if route.method == "GET":
        responses["200"] = {"description": "The page", "content": _HTML}
    if route.method == "POST" or 303 in route.errors:
        responses["303"] = {
            "description": "Redirect after the form"
            if route.method == "POST"
            else "Sign in first: to the log-in page, and back after it",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    for status in sorted(set(route.errors) - {303}):
        # 200 of a form: the page itself, shown with what the form made (a
        # webhook's secret, which must not travel through a redirect's URL).
        responses[str(status)] = (
            {"description": "The page", "content": _HTML} if status == 200 else _PAGE_ERROR
        )
    return responses


def _api_responses(route: Route, raw: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.status == 204:
        responses["204"] = {"description": "Done, no body"}
    elif route.name == "ws":
        responses["101"] = {"description": "Switching to the WebSocket protocol"}
    elif route.name == "metrics":
        text = {"text/plain": {"schema": {"type": "string"}}}
        responses["200"] = {"description": "Prometheus text format", "content": text}
    elif route.name.startswith("graphql"):
        content = {"application/json": {"schema": _ref(route.response)}}
        if route.method == "GET":
            content.update(_HTML)  # GraphiQL, for browsers
            responses["101"] = {"description": "graphql-transport-ws subscriptions"}
        responses["200"] = {"description": "data and errors", "content": content}
    elif route.name == "media":
        responses["200"] = {"description": "The image", "content": {"image/jpeg": {}}}
        responses["206"] = {"description": "Part of the image (Range)"}
        responses["302"] = {
            "description": "A private photo's signed URL, with a CDN and S3 configured:"
            " to the store's own expiring (presigned) URL"
        }
        responses["304"] = {"description": "Not modified (If-None-Match)"}
    else:
        content = (
            {"application/json": {"schema": _ref(route.response)}}
            if route.response
            else {"application/json": {}}
        )
        responses[str(route.status)] = {"description": "Success", "content": content}
    for status in sorted(route.errors):
        responses[str(status)] = _PROBLEM
    return responses


_HTML = {"text/html": {"schema": {"type": "string"}}}
_PROBLEM_JSON = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_PROBLEM = {"description": "Problem details", "content": _PROBLEM_JSON}
_PAGE_ERROR = {
    "description": "An error page (or the form again) for browsers, problem details otherwise",
    "content": {**_HTML, **_PROBLEM_JSON},
}


def _ref(name: str | None) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"} if name else {}
