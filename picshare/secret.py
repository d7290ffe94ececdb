"""The key that signs session cookies: from settings, or made once and kept in the data dir."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from picshare.config import Settings, SettingsError

MIN_BYTES = 16


def load_secret_key(settings: Settings) -> bytes:
    if settings.server.secret_key:
        return _checked(settings.server.secret_key.encode(), "server.secret_key")
    path = settings.data_path / "secret_key"
    if not path.exists():
        _create(path)
    return _checked(path.read_bytes().strip(), str(path))


def _create(path: Path) -> None:
    """Write a new key atomically: a crash leaves either no file or a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_urlsafe(48).encode())
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails if another process created the key meanwhile: theirs wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < MIN_BYTES:
        raise SettingsError(f"{where}: the secret key must be at least {MIN_BYTES} bytes")
    return key
