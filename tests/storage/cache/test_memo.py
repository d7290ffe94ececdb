"""Memo: one value per exact key, made once, bounded."""

from __future__ import annotations

import pytest

from storage.cache.memo import IdentityMemo, Memo


def test_same_bytes_give_the_same_object_made_once() -> None:
    made: list[bytes] = []

    def make(raw: bytes) -> list[bytes]:
        made.append(raw)
        return [raw]

    memo: Memo[bytes, list[bytes]] = Memo(make)
    first = memo(b"abc")
    again = memo(bytes(bytearray(b"abc")))  # equal bytes, another object (as from Redis)
    assert again is first
    assert made == [b"abc"]
    assert memo(b"abd") == [b"abd"]
    assert len(made) == 2


def test_bounded_least_recently_used_goes_first() -> None:
    memo: Memo[int, str] = Memo(str, max_entries=2)
    one = memo(1)
    memo(2)
    assert memo(1) is one  # 1 is now the most recent
    memo(3)  # pushes out 2
    assert len(memo) == 2
    assert memo(1) is one


def test_needs_room() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        Memo(str, max_entries=0)


def test_identity_memo_per_object_not_per_value() -> None:
    memo: IdentityMemo[list[int], str] = IdentityMemo(max_entries=2)
    a, b = [1], [1]  # equal, and unhashable
    made_a = memo(a, lambda x: f"a{id(x)}")
    assert memo(a, lambda x: "again") is made_a
    assert memo(b, lambda x: "b") == "b"  # an equal list is another object
    memo([2], lambda x: "c")  # pushes out a
    assert memo(a, lambda x: "new") == "new"
