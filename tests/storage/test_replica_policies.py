"""Replica policies (storage/replicas/): each one's choice over real pools."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from storage.db import create_pool
from storage.node import Node, Role
from storage.replicas import replica_policy


@pytest.fixture
async def nodes(database_url: str) -> AsyncIterator[list[Node]]:
    pools = [
        await create_pool(
            database_url, min_size=0, max_size=4, command_timeout=5, connect_timeout=5
        )
        for _ in range(3)
    ]
    yield [Node(f"replica-{i + 1}", Role.REPLICA, pool) for i, pool in enumerate(pools)]
    for pool in pools:
        await pool.close()


async def test_round_robin_takes_turns(nodes: list[Node]) -> None:
    policy = replica_policy("round_robin")
    seen = Counter(policy.choose(nodes, None).label for _ in range(30))
    assert seen == Counter({"replica-1": 10, "replica-2": 10, "replica-3": 10})


async def test_least_conn_picks_the_idle_one(nodes: list[Node]) -> None:
    policy = replica_policy("least_conn")
    busy = [
        await nodes[0].pool.acquire(),
        await nodes[0].pool.acquire(),
        await nodes[1].pool.acquire(),
    ]
    try:
        assert {policy.choose(nodes, None).label for _ in range(6)} == {"replica-3"}
    finally:
        for conn, node in zip(busy, (nodes[0], nodes[0], nodes[1]), strict=True):
            await node.pool.release(conn)
    # All idle: ties go round, so an idle site still spreads.
    assert len({policy.choose(nodes, None).label for _ in range(6)}) == 3


async def test_hash_is_sticky_and_moves_only_the_lost_replicas_users(nodes: list[Node]) -> None:
    policy = replica_policy("hash")
    homes = {user: policy.choose(nodes, user).label for user in range(300)}
    assert all(policy.choose(nodes, user).label == homes[user] for user in range(300))
    assert len(set(homes.values())) == 3
    without_2 = [n for n in nodes if n.label != "replica-2"]
    for user, home in homes.items():
        moved = policy.choose(without_2, user).label
        assert moved == home or home == "replica-2"


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        replica_policy("random")
