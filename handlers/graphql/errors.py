"""Errors as GraphQL clients expect them: in the `errors` array, each with
`extensions.code`, over HTTP and over graphql-transport-ws alike; a domain
error keeps its message (and its fields), anything unexpected is logged here
and answered with a plain message, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from picshare.errors import (
    DomainError,
    Forbidden,
    NotFound,
    RateLimited,
    TimedOut,
    Unauthenticated,
    Unavailable,
)
from storage.router import DatabaseUnavailable

log = logging.getLogger(__name__)

# Most specific first; any other DomainError is the caller's input.
_CODES: tuple[tuple[type[Exception], str], ...] = (
    (Unauthenticated, "UNAUTHENTICATED"),
    (Forbidden, "FORBIDDEN"),
    (NotFound, "NOT_FOUND"),
    (RateLimited, "RATE_LIMITED"),
    (Unavailable, "UNAVAILABLE"),
    (TimedOut, "UNAVAILABLE"),
    (DatabaseUnavailable, "UNAVAILABLE"),
    (DomainError, "BAD_USER_INPUT"),
)
# Syntax and validation errors (graphql-core's, without a code of their own).
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


def code_of(error: GraphQLError) -> str | None:
    original = error.original_error
    if original is None:
        return None
    for kind, code in _CODES:
        if isinstance(original, kind):
            return code
    return "INTERNAL_SERVER_ERROR"


def expected(error: GraphQLError) -> bool:
    """Whether the error is the client's or a dependency's, not a bug here."""
    return code_of(error) != "INTERNAL_SERVER_ERROR"


def annotate(error: GraphQLError) -> None:
    """Give the error, in place, its `extensions.code` (and the domain error's
    message and fields), so that whichever transport formats it (the HTTP
    view, or strawberry's graphql-transport-ws handler sending a
    subscription's `next` or `error`) sends the same thing. Done once: a bug
    is logged here with its traceback and answered with a plain message."""
    extensions: dict[str, Any] = dict(error.extensions or {})
    if "code" in extensions:
        return
    code = code_of(error)
    original = error.original_error
    if code is None:
        extensions["code"] = VALIDATION_FAILED
    elif code == "INTERNAL_SERVER_ERROR":
        log.error("GraphQL resolver failed at %s", error.path, exc_info=original)
        error.message = "Something went wrong on our side; it has been logged."
        extensions["code"] = code
    else:
        extensions["code"] = code
        if isinstance(original, DomainError):
            error.message = original.detail
            if original.errors:
                extensions["fields"] = [
                    {"field": e.field, "message": e.message} for e in original.errors
                ]
            if isinstance(original, RateLimited):
                extensions["retryAfter"] = original.retry_after
        elif code == "UNAVAILABLE":
            error.message = "The database is unavailable for a moment; try again shortly."
    error.extensions = extensions


def formatted(error: GraphQLError) -> dict[str, Any]:
    """One entry of the `errors` array."""
    annotate(error)
    return dict(error.formatted)
