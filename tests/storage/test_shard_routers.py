"""Shard routers (storage/shard_routers/): which logical shard a name belongs to,
and where logical shards start out."""

from __future__ import annotations

from collections import Counter

import pytest

from storage.shard_routers import shard_router, stable_hash
from storage.shard_routers.range import RangeRouter


def test_range_router_is_the_story_a_m_n_z() -> None:
    router = shard_router("range", physical=2, logical_shards=1024, ranges=())
    assert router.logical_shards == 2
    assert router.default_placement(2) == [0, 1]
    for name in ("alice", "mallory", "m_z", "0day", "_under", ".dot", "a"):
        assert router.logical_for_username(name) == 0, name
    for name in ("nina", "oscar", "zed", "n"):
        assert router.logical_for_username(name) == 1, name


def test_range_router_takes_ranges_from_settings() -> None:
    router = shard_router("range", physical=3, logical_shards=1, ranges=("h", "t"))
    assert [router.logical_for_username(n) for n in ("gus", "hal", "sam", "tom", "zoe")] == [
        0,
        1,
        1,
        2,
        2,
    ]


def test_range_starts_are_checked() -> None:
    with pytest.raises(ValueError, match="in order"):
        RangeRouter(["t", "h"])
    with pytest.raises(ValueError, match="one letter"):
        RangeRouter(["nn"])
    assert RangeRouter.even_starts(1) == []
    assert RangeRouter.even_starts(2) == ["n"]


def test_hash_router_is_stable_and_spreads() -> None:
    router = shard_router("hash", physical=4, logical_shards=1024, ranges=())
    # The same name, the same shard, in every process: not Python's salted hash().
    assert router.logical_for_username("alice") == stable_hash("alice") % 1024
    logical = Counter(router.logical_for_username(f"user{i}") for i in range(20_000))
    assert len(logical) > 1000  # nearly every one of the 1024 is used
    placement = router.default_placement(4)
    assert len(placement) == 1024 and sorted(set(placement)) == [0, 1, 2, 3]
    per_database = Counter(placement[s] for s in logical.elements())
    # Contiguous blocks of logical shards, users spread about evenly over databases.
    assert all(4000 < n < 6000 for n in per_database.values()), per_database


def test_unknown_router_is_refused() -> None:
    with pytest.raises(ValueError, match="range, hash"):
        shard_router("modulo", physical=2, logical_shards=16, ranges=())
