"""Bearer tokens and session ids: random secrets of which only a hash is stored.

A token names the logical shard of its user (`psh_<logical>_<secret>`), so the
one database that holds its hash is known without asking every shard. Tokens
made before shards (`psh_<secret>`) name none: they live in the catalog, the
database that was the only one then. The two forms cannot be confused: the
secret is always `SECRET_CHARS` long, so an old token is too short to hold a
shard number, a separator and a secret."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "psh_"  # lets secret scanners recognise leaked tokens
SECRET_BYTES = 32
SECRET_CHARS = 43  # what token_urlsafe makes of SECRET_BYTES
MAX_LOGICAL = 8191  # the ID's 13 shard bits


def new_token(logical: int | None = None) -> str:
    """A fresh token; with `logical`, one that names its user's logical shard."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    if logical is None:
        return PREFIX + secret
    if not 0 <= logical <= MAX_LOGICAL:
        raise ValueError(f"logical shard {logical} is out of range")
    return f"{PREFIX}{logical}_{secret}"


def logical_of(token: str) -> int | None:
    """The logical shard a token names; None for one that names none (an old
    token, or anything else: those are looked up in the catalog)."""
    if not token.startswith(PREFIX):
        return None
    head, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(secret) != SECRET_CHARS:
        return None
    if not (1 <= len(head) <= 4 and head.isascii() and head.isdigit()):
        return None
    logical = int(head)
    return logical if logical <= MAX_LOGICAL else None


def hash_token(token: str) -> bytes:
    # The token is already high-entropy, so a plain SHA-256 is enough (no salt).
    return hashlib.sha256(token.encode()).digest()
