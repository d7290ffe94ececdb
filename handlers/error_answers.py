"""The answer to an error: RFC 9457 problem details for API requests
(including the router's 404 and 405 and anything unexpected: a 500 with no
traceback), an error page for a browser asking for HTML. Used by the request
layer (handlers/middlewares.py) and by the steps that render an error
themselves to add their headers (rate limits, Idempotency-Key)."""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web

from handlers import problems
from picshare import keys
from picshare.errors import DomainError, Unavailable
from storage.blobs import BlobStoreUnavailable
from storage.router import DatabaseUnavailable, ShardMoving

__all__ = ["error_answer", "wants_html"]

log = logging.getLogger(__name__)


def wants_html(request: web.Request) -> bool:
    """A browser on a page route: errors render as an HTML page, not problem+json."""
    return request[keys.ROUTE].html_errors and "text/html" in request.headers.get("Accept", "")


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to an error a handler raised. Call it in the `except` block
    (an unexpected error is logged with its traceback)."""
    if isinstance(exc, DomainError):
        return _error_response(request, problems.status_of(exc), exc)
    if isinstance(exc, DatabaseUnavailable):
        log.warning("%s %s: %s", request.method, request.path, exc)
        down = Unavailable(
            "This data is moving to another database; try again in a moment."
            if isinstance(exc, ShardMoving)
            else "The database is unavailable for a moment; try again shortly."
        )
        return _error_response(request, 503, down)
    if isinstance(exc, BlobStoreUnavailable):
        log.warning("%s %s: %s", request.method, request.path, exc)
        return _error_response(
            request, 503, Unavailable("The photo store is unavailable; try again shortly.")
        )
    if isinstance(exc, web.HTTPException):
        return _http_error(request, exc)
    log.exception("unhandled error in %s %s", request.method, request.path)
    return _render(request, 500, "Something went wrong on our side; it has been logged.")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    detail = {
        404: "There is nothing at this address.",
        405: f"{request.method} is not allowed here.",
        413: "The request body is too large.",
    }.get(exc.status, exc.reason)
    response = _render(request, exc.status, detail)
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


def _error_response(request: web.Request, status: int, exc: DomainError) -> web.StreamResponse:
    if wants_html(request):
        return _render(request, status, exc.detail)
    return problems.from_domain(exc, instance=request.rel_url.raw_path)


def _render(request: web.Request, status: int, detail: str) -> web.StreamResponse:
    if wants_html(request):
        return aiohttp_jinja2.render_template(
            "error.html",
            request,
            {
                "request": request,
                "me": request.get(keys.USER),
                "csrf_token": request.get(keys.CSRF_TOKEN, ""),
                "status": status,
                "title": problems.title_of(status),
                "detail": detail,
            },
            status=status,
        )
    return problems.problem(status, detail, instance=request.rel_url.raw_path)
