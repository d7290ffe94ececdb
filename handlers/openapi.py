"""The OpenAPI 3.1 document, built from the route table so it always matches."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

import picshare
from handlers.routes_meta import SCHEMAS

_STRING = {"type": "string"}
_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "cursor": {
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]+$",
        "description": "next_cursor of the previous page",
    },
    "user": {"type": "string", "description": "only this user's photos"},
    "tag": {"type": "string", "description": "only photos with this tag"},
    "q": {"type": "string", "maxLength": 100, "description": "what to look for"},
    "since": {
        "type": "string",
        "pattern": "^[0-9]{1,19}$",
        "description": "replay notifications newer than this id first",
    },
    "token": {
        "type": "string",
        "description": "a bearer token, for clients that cannot set headers",
    },
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
    from handlers.routes import ROUTES

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
                "responses": {"200": {"description": "The file"}, "404": _PROBLEM},
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
            },
        },
    }


def _operation(route: Any, raw: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name + ("" if raw == route.path else ".alias"),
        "summary": route.summary,
        "tags": [route.tag],
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([a-z_]+)\}", template_path(raw))
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": _QUERY[name]}
        for name in route.query
    ]
    if params:
        op["parameters"] = params
    if route.auth:
        op["security"] = [{"bearer": []}, {"session": []}]
    if route.body == "multipart":
        op["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/Upload"}}},
        }
    elif route.body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    responses: dict[str, Any] = {}
    if not route.in_api:
        # A page: HTML for browsers (forms answer 303 See Other on success).
        html = {"text/html": {"schema": {"type": "string"}}}
        ok = "303" if route.method == "POST" else "200"
        responses[ok] = {"description": "The page" if ok == "200" else "Redirect after the form"}
        if ok == "200":
            responses[ok]["content"] = html
        op["responses"] = responses
        return op
    if route.status == 204:
        responses["204"] = {"description": "Done, no body"}
    elif route.name == "ws":
        responses["101"] = {"description": "Switching to the WebSocket protocol"}
    elif route.name == "media":
        responses["200"] = {"description": "The image", "content": {"image/jpeg": {}}}
        responses["206"] = {"description": "Part of the image (Range)"}
        responses["304"] = {"description": "Not modified (If-None-Match)"}
    else:
        content = (
            {"application/json": {"schema": _ref(route.response)}}
            if route.response
            else {"application/json": {}}
        )
        responses[str(route.status)] = {"description": "Success", "content": content}
    errors = set(route.errors)
    if raw.startswith("/api/"):
        errors.add(401)  # any API call that sends a bad bearer token
        errors.add(429)  # every API route class has a rate-limit policy
    if route.auth and route.method != "GET":
        errors.add(403)  # cookie sessions without the CSRF header
    if route.body and route.body != "multipart":
        errors.add(413)  # JSON bodies over 64 KiB
    for status in sorted(errors):
        responses[str(status)] = _PROBLEM
    op["responses"] = responses
    return op


_PROBLEM = {
    "description": "Problem details",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _ref(name: str | None) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"} if name else {}
