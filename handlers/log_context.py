"""The request id on every log line written while a request is handled.

`request_middleware` (handlers/middlewares.py) sets it for the request's
task (tasks it starts inherit it); `RequestIdFormatter` appends
` request_id=<id>` to a line written under one, so a warning in a service
can be found from the id the gateway and the client saw. Lines outside
any request are left as they were.
"""

from __future__ import annotations

import contextvars
import logging

__all__ = ["REQUEST_ID", "RequestIdFormatter"]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "picshare_request_id", default=None
)


class RequestIdFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        return text if request_id is None else f"{text} request_id={request_id}"
