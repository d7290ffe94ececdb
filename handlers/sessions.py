"""Signed cookie sessions and CSRF tokens for browsers.

The cookie holds `{"sid": <session token or null>, "csrf": <random>}`,
signed with HMAC-SHA256 under the server's secret key. The session token is
also stored (hashed) in the database, so logging out revokes it server-side.
CSRF uses the signed double-submit pattern: forms and the `X-CSRF-Token`
header must echo the cookie's `csrf` value, which a cross-site page can
neither read (HttpOnly) nor forge (signed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from aiohttp import web

from picshare.config import AuthSettings

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str | None
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(session: Session, secret: bytes) -> str:
    payload = _b64(orjson.dumps({"sid": session.sid, "csrf": session.csrf}))
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unsign(value: str, secret: bytes) -> Session | None:
    payload, _, mac = value.partition(".")
    try:
        expected = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        data = orjson.loads(_unb64(payload))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    sid, csrf = data.get("sid"), data.get("csrf")
    if not isinstance(csrf, str) or not (sid is None or isinstance(sid, str)):
        return None
    return Session(sid, csrf)


def new_session(sid: str | None = None) -> Session:
    return Session(sid, secrets.token_urlsafe(24))


def set_cookie(
    response: web.StreamResponse,
    session: Session,
    *,
    secret: bytes,
    auth: AuthSettings,
    secure: bool,
) -> None:
    response.set_cookie(
        auth.session_cookie,
        sign(session, secret),
        max_age=auth.session_days * 86400,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )


def csrf_matches(expected: str, submitted: str | None) -> bool:
    # As bytes: compare_digest refuses text that is not ASCII, and a form or
    # a header may carry anything (headers' raw bytes as surrogate escapes).
    given = (submitted or "").encode("utf-8", "surrogateescape")
    return bool(submitted) and hmac.compare_digest(expected.encode(), given)
