"""The gateway's word to a service: who is asking, for this one request.

The gateway authenticates a request once (bearer token or session cookie)
and sends the service a short-lived token, HMAC-SHA256 signed with
`server.internal_secret`, naming the user (or nobody), how they signed in,
the request id, and the request's method and path. A service behind the
gateway believes no other identity, and refuses a token that is forged,
expired, or made for another request (a 401 problem).

Format: base64url(JSON claims) "." base64url(HMAC of the first part).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

__all__ = ["HEADER", "Claims", "InternalTokens", "InvalidInternalToken"]

# Stripped by the gateway from every incoming request, so only it sets it.
HEADER = "PicShare-Internal-Token"


class InvalidInternalToken(ValueError):
    """Forged, expired, malformed, or for another request."""


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int | None
    auth_kind: str | None  # "bearer" or "session"
    request_id: str
    method: str
    path: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InternalTokens:
    __slots__ = ("_clock", "_key", "_ttl")

    def __init__(
        self, secret: str, *, ttl: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hashlib.sha256(b"picshare-internal\0" + secret.encode()).digest()
        self._ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"<InternalTokens ttl={self._ttl}>"

    def sign(
        self,
        *,
        user_id: int | None,
        auth_kind: str | None,
        request_id: str,
        method: str,
        path: str,
    ) -> str:
        claims = {
            "u": user_id,
            "k": auth_kind,
            "r": request_id,
            "m": method,
            "p": path,
            "e": round(self._clock() + self._ttl, 3),
        }
        body = _b64(orjson.dumps(claims))
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, *, method: str, path: str) -> Claims:
        body, sep, mac = token.partition(".")
        if not sep or not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidInternalToken("the internal token's signature does not match")
        try:
            raw = orjson.loads(_unb64(body))
            claims = Claims(
                user_id=None if raw["u"] is None else int(raw["u"]),
                auth_kind=None if raw["k"] is None else str(raw["k"]),
                request_id=str(raw["r"]),
                method=str(raw["m"]),
                path=str(raw["p"]),
                expires=float(raw["e"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInternalToken("the internal token is malformed") from exc
        if claims.expires < self._clock():
            raise InvalidInternalToken("the internal token has expired")
        if claims.method != method or claims.path != path:
            raise InvalidInternalToken("the internal token was made for another request")
        return claims

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
