"""The batched access log: the same line `logging` wrote, written in batches."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from handlers import access_log
from handlers.access_log import AccessLog, flush_now

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO aiohttp\.access: 127\.0\.0\.1 "
    r'"GET /hello\?x=1 HTTP/1\.1" 200 \d+ \d+\.\d{6} "probe/1"$'
)


async def _serve_and_get(
    paths: list[str], app: web.Application | None = None, **runner: Any
) -> list[str]:
    """Serve `app` (else one "hello" route) as run.py does; GET each path;
    the responses' request ids."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    if app is None:
        app = web.Application()
        app.router.add_get("/hello", hello)
    served = web.AppRunner(app, access_log_class=AccessLog, **runner)
    await served.setup()
    site = web.TCPSite(served, "127.0.0.1", 0)
    await site.start()
    port = served.addresses[0][1]
    ids = []
    try:
        async with aiohttp.ClientSession(headers={"User-Agent": "probe/1"}) as session:
            for path in paths:
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200
                    ids.append(resp.headers.get("X-Request-ID", ""))
    finally:
        await served.cleanup()
    return ids


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(access_log._batch, "stream", out)
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    return out


async def test_line_reads_as_the_logging_format_did(stream: io.StringIO) -> None:
    await _serve_and_get(["/hello?x=1"])
    flush_now()
    (line,) = stream.getvalue().splitlines()
    assert LINE.match(line), line


async def test_lines_are_written_in_one_batch_soon_after(stream: io.StringIO) -> None:
    await _serve_and_get(["/hello?x=1"] * 5)
    assert stream.getvalue() == ""  # gathered, not yet written
    await asyncio.sleep(access_log.FLUSH_AFTER * 3)
    assert len(stream.getvalue().splitlines()) == 5


async def test_a_quiet_logger_writes_nothing(stream: io.StringIO) -> None:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        await _serve_and_get(["/hello?x=1"])
        flush_now()
        assert stream.getvalue() == ""
    finally:
        logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)


async def test_json_lines_carry_the_request_id(stream: io.StringIO, app: web.Application) -> None:
    """`server.access_log_format = "json"`, on the real app: one object per
    line, whose request id is the one the response carried."""
    (request_id,) = await _serve_and_get(["/healthz?x=1"], app, access_log_format="json")
    flush_now()
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == request_id != ""
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz?x=1", 200)
    assert entry["user_agent"] == "probe/1" and entry["remote"] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert 0 < entry["seconds"] < 5 and entry["bytes"] > 0
