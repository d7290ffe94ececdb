"""The gateway's internal tokens (picshare/internal_token.py)."""

from __future__ import annotations

import pytest

from picshare.internal_token import InternalTokens, InvalidInternalToken

SECRET = "a-shared-secret-of-some-length"


class Clock:
    """A settable clock, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _sign(tokens: InternalTokens, user_id: int | None = 42, path: str = "/api/v1/me") -> str:
    return tokens.sign(
        user_id=user_id, auth_kind="bearer", request_id="rid-1", method="GET", path=path
    )


def test_a_token_carries_the_user_and_the_request() -> None:
    tokens = InternalTokens(SECRET)
    claims = tokens.verify(_sign(tokens), method="GET", path="/api/v1/me")
    assert (claims.user_id, claims.auth_kind, claims.request_id) == (42, "bearer", "rid-1")
    anonymous = tokens.verify(_sign(tokens, None), method="GET", path="/api/v1/me")
    assert anonymous.user_id is None


def test_another_secret_or_a_changed_claim_is_refused() -> None:
    token = _sign(InternalTokens(SECRET))
    with pytest.raises(InvalidInternalToken, match="signature"):
        InternalTokens("another-secret-entirely").verify(token, method="GET", path="/api/v1/me")
    body, _, mac = token.partition(".")
    other = _sign(InternalTokens(SECRET), user_id=1).partition(".")[0]
    with pytest.raises(InvalidInternalToken, match="signature"):
        InternalTokens(SECRET).verify(f"{other}.{mac}", method="GET", path="/api/v1/me")
    with pytest.raises(InvalidInternalToken):
        InternalTokens(SECRET).verify(body, method="GET", path="/api/v1/me")


def test_a_token_expires_and_is_good_for_its_own_request_only() -> None:
    clock = Clock()
    tokens = InternalTokens(SECRET, ttl=30, clock=clock)
    token = _sign(tokens)
    clock.now += 29
    tokens.verify(token, method="GET", path="/api/v1/me")
    clock.now += 2
    with pytest.raises(InvalidInternalToken, match="expired"):
        tokens.verify(token, method="GET", path="/api/v1/me")
    fresh = _sign(tokens)
    with pytest.raises(InvalidInternalToken, match="another request"):
        tokens.verify(fresh, method="DELETE", path="/api/v1/me")
    with pytest.raises(InvalidInternalToken, match="another request"):
        tokens.verify(fresh, method="GET", path="/api/v1/wallet")
