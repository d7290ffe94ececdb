"""The OpenAPI 3.1 document, built from the route table so it always matches."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

import picshare
from handlers.routes_meta import SCHEMAS

_PARAM = re.compile(r"\{([a-z_]+)(:[^}]*)?\}")
_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "cursor": {"type": "string", "description": "next_cursor of the previous page"},
    "user": {"type": "string", "description": "only this user's photos"},
    "tag": {"type": "string", "description": "only photos with this tag"},
}


def build_spec(app: web.Application) -> dict[str, Any]:
    from handlers.routes import ROUTES

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        if not route.in_api:
            continue
        for path in (route.path, *route.aliases):
            clean = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
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
        for name in [m[0] for m in _PARAM.findall(raw)]
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
    if route.status == 204:
        responses["204"] = {"description": "Done, no body"}
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
    for status in route.errors:
        responses[str(status)] = {
            "description": "Problem details",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    op["responses"] = responses
    return op


def _ref(name: str | None) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"} if name else {}
