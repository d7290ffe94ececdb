"""Every error leaves with an `extensions.code`; a bug's is
INTERNAL_SERVER_ERROR with a plain message, logged once with its traceback
(the client never sees it), whichever transport formats it afterwards."""

from __future__ import annotations

import logging

import pytest
from graphql import GraphQLError

from handlers.graphql.errors import annotate, formatted
from picshare.errors import NotFound, RateLimited, invalid


def _raised(exc: Exception) -> GraphQLError:
    try:
        raise exc
    except Exception as caught:  # a resolver's error, as graphql-core wraps it
        return GraphQLError(str(caught), path=["photo"], original_error=caught)


def test_a_bug_is_logged_once_and_answered_plainly(caplog: pytest.LogCaptureFixture) -> None:
    error = _raised(KeyError("secret_column"))
    with caplog.at_level(logging.ERROR, logger="handlers.graphql.errors"):
        annotate(error)  # the schema's process_errors
        body = formatted(error)  # the HTTP view, later
    assert body["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret_column" not in body["message"] and "Traceback" not in str(body)
    assert body["path"] == ["photo"]
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert len(logged) == 1 and "secret_column" in str(logged[0])


def test_domain_errors_keep_their_message_fields_and_code() -> None:
    missing = formatted(_raised(NotFound("no such photo")))
    assert (missing["message"], missing["extensions"]) == ("no such photo", {"code": "NOT_FOUND"})
    bad = formatted(_raised(invalid("first", "must be a whole number from 1 to 100")))
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad["extensions"]["fields"] == [
        {"field": "first", "message": "must be a whole number from 1 to 100"}
    ]
    slow = formatted(_raised(RateLimited("slow down", retry_after=7)))
    assert slow["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 7}
    # No original error: the document's (syntax, validation).
    assert formatted(GraphQLError("Cannot query field 'nope'"))["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED"
    }
