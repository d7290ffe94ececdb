"""The key that signs session cookies: from settings, or made once and kept in the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from picshare.config import Settings


def load_secret_key(settings: Settings) -> bytes:
    if settings.server.secret_key:
        return settings.server.secret_key.encode()
    path = settings.data_path / "secret_key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    # O_EXCL: two processes starting together keep whichever wrote first.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Path(path).read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key
