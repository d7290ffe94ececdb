"""Bearer tokens and session ids: random secrets of which only a hash is stored."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "psh_"


def new_token() -> str:
    # 32 random bytes; the prefix lets secret scanners recognise leaked tokens.
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    # The token is already high-entropy, so a plain SHA-256 is enough (no salt).
    return hashlib.sha256(token.encode()).digest()
