"""Domain errors. Services raise these; `handlers/problems.py` turns them into
RFC 9457 problem details with the right status. Nothing here knows HTTP."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """Base: `detail` is safe to show to the user."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = [FieldError(field, detail)] if field else []


class InvalidInput(DomainError):
    """One or more fields are wrong (400)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Unauthenticated(DomainError):
    """No or bad credentials (401)."""


class Forbidden(DomainError):
    """Signed in, but not allowed (403)."""


class NotFound(DomainError):
    """Missing, or not visible to this viewer (404)."""


class Conflict(DomainError):
    """Clashes with existing state, e.g. a taken username (409)."""


class TooLarge(DomainError):
    """Over a size limit (413)."""


class UnsupportedMedia(DomainError):
    """The content is not an accepted image type (415)."""


class Unprocessable(DomainError):
    """Well-formed but unusable, e.g. a truncated image or a decompression bomb (422)."""


class RateLimited(DomainError):
    """Over a rate limit (429); `retry_after` is in whole seconds."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency is briefly unavailable; the client may retry (503)."""


class TimedOut(DomainError):
    """The client took too long to send the request (408)."""


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput([FieldError(field, message)])
