"""RFC 9457 problem details: the one shape every API error takes."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from handlers.jsonio import dumps
from picshare import errors
from picshare.errors import FieldError

PROBLEM_TYPE = "application/problem+json"

STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.TimedOut: 408,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.Unprocessable: 422,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def status_of(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    field_errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": f"https://picshare.dev/problems/{status}",
        "title": title or title_of(status),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if field_errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in field_errors]
    return web.Response(status=status, body=dumps(body), content_type=PROBLEM_TYPE, headers=headers)


def from_domain(exc: errors.DomainError, instance: str | None = None) -> web.Response:
    headers: dict[str, str] | None = None
    if isinstance(exc, errors.Unauthenticated):
        headers = {"WWW-Authenticate": 'Bearer realm="picshare"'}
    elif isinstance(exc, errors.Unavailable):
        headers = {"Retry-After": "1"}
    elif isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(
        status_of(exc), exc.detail, field_errors=exc.errors, headers=headers, instance=instance
    )


def title_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
