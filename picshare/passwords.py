"""argon2id password hashing, off the event loop (argon2-cffi releases the GIL)."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's second recommendation (argon2id,
# t=3, m=64 MiB, p=4): about 50 ms here, which is the point.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("picshare-timing-equalizer")


# Its own small pool: a burst of logins (64 MiB and ~50 ms each) queues here
# instead of starving the default executor that file I/O uses.
_executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="argon2")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_executor, _hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _executor, _verify, password_hash or _DUMMY_HASH, password
    )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
