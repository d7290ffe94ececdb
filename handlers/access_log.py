"""The access log: one line per request, written in batches.

Through `logging`, a line cost about a fifth of a small request (finding
the caller, a LogRecord, strftime, and a write and flush per line). Here a
line is one f-string, the timestamp's second is formatted once per second,
and lines are written together: when 64 KiB have gathered, and otherwise
at most `FLUSH_AFTER` seconds after the first line of a batch (nginx's
`access_log ... buffer= flush=`). A crash loses at most that fraction of a
second of lines; a clean stop flushes them (`flush_now`, and at exit).

The line reads exactly as the `logging` one did:
`2026-11-30 08:47:08,179 INFO aiohttp.access: 127.0.0.1 "GET /p HTTP/1.1" 200 512
0.000811 "curl/8"` (one line). With `server.access_log_format = "json"` it is
one JSON object instead, with the request id (`X-Request-ID`) that the
response and the app's own log lines carry:
`{"time":"2026-11-30T08:47:08.179Z","request_id":"4f1c2a9b07e31","remote":
"127.0.0.1","method":"GET","path":"/p","status":200,"bytes":512,
"seconds":0.000811,"user_agent":"curl/8"}`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import TextIO

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import HttpVersion10, HttpVersion11

from picshare import keys

__all__ = ["AccessLog", "flush_now"]

FLUSH_AFTER = 0.1
# `AccessLog.log` takes a parameter named `time` (aiohttp's signature).
_now = time.time
_strftime = time.strftime
_gmtime = time.gmtime
FLUSH_BYTES = 64 * 1024
# The request line's protocol, as text, for the versions clients send.
_VERSIONS = {HttpVersion11: "HTTP/1.1", HttpVersion10: "HTTP/1.0"}


class _Batch:
    """The process's pending lines (aiohttp makes an `AccessLog` per connection)."""

    __slots__ = (
        "_handle",
        "_lines",
        "_milli",
        "_milli_stamp",
        "_second",
        "_size",
        "_stamp",
        "stream",
    )

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._size = 0
        self._handle: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        self._milli = -1
        self._milli_stamp = ""

    def stamp(self, now: float) -> str:
        # Several lines share a millisecond under load: its text is kept.
        milli = int(now * 1000)
        if milli == self._milli:
            return self._milli_stamp
        second = milli // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        self._milli = milli
        self._milli_stamp = text = f"{self._stamp},{milli - second * 1000:03d}"
        return text

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop (a direct call): write at once
                self.flush()
                return
            self._handle = loop.call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone: the request was served, the line is lost


_batch = _Batch(sys.stderr)
atexit.register(_batch.flush)


def flush_now() -> None:
    """Write what is pending (on shutdown, and for tests that read the log)."""
    _batch.flush()


class AccessLog(AbstractAccessLogger):
    """`%a "%r" %s %b %Tf "%{User-Agent}i"` under the logger's name, batched.
    The format argument is ignored: this is the one format PicShare writes."""

    __slots__ = ("_json", "_prefix")

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._prefix = f" INFO {logger.name}: "
        # aiohttp hands over its `access_log_format`: PicShare passes
        # `server.access_log_format` there ("text" or "json").
        self._json = log_format == "json"

    @property
    def enabled(self) -> bool:
        return bool(self.logger.isEnabledFor(logging.INFO))

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if self._json:
            _batch.add(_json_line(request, response, time))
            return
        version = request.version
        protocol = _VERSIONS.get(version)
        if protocol is None:
            protocol = f"HTTP/{version.major}.{version.minor}"
        _batch.add(
            f"{_batch.stamp(_now())}{self._prefix}{request.remote or '-'} "
            f'"{request.method} {request.raw_path} {protocol}" '
            f"{response.status} {response.body_length} {time:.6f} "
            f'"{request.headers.get("User-Agent", "-")}"\n'
        )


def _json_line(request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> str:
    now = _now()
    stamp = _strftime("%Y-%m-%dT%H:%M:%S", _gmtime(now))
    return (
        orjson.dumps(
            {
                "time": f"{stamp}.{int((now % 1) * 1000):03d}Z",
                "request_id": request.get(keys.REQUEST_ID, "-"),
                "remote": request.remote or "-",
                "method": request.method,
                "path": request.raw_path,
                "status": response.status,
                "bytes": response.body_length,
                "seconds": round(seconds, 6),
                "user_agent": request.headers.get("User-Agent", "-"),
            }
        ).decode()
        + "\n"
    )
