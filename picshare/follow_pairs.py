"""Changing both sides of a follow whose two users live on two databases.

A follow has a row on the follower's database (their "following" list, the
home feed) and one on the followee's (their "followers" list, the privacy
rule on their photos). Between two databases there is no transaction, so
one side must be the truth: the side on the database that comes first in
the shards' order (the lower one). Every change of the pair

1. opens a transaction on each database (the higher one's connection first,
   as every user of this module does, so two changes never each hold one
   pool's last connection while waiting for the other's) and takes the
   pair's lock in each, the lower one's first;
2. writes the lower side, with a mirror job that makes the other side match
   it, and commits;
3. writes the higher side and commits.

No other change or mirror of the pair runs in between (the higher lock is
held until the end), so when a change is over both sides agree. A crash
between 2 and 3 leaves the truth committed and its job queued: the job
(`SocialService._mirror`), run by any process, copies the lower side to the
higher one. Every mirror job of a pair copies the same way, so no two jobs
can undo each other, whatever order they run in.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from types import TracebackType
from typing import NamedTuple

from picshare import notify
from storage import social_repo
from storage.db import Connection
from storage.shards import Shards


class Side(NamedTuple):
    """One database's transaction in a pair change, and whose side it holds."""

    conn: Connection
    notes: notify.Notes
    followee: bool  # False: the follower's side


class FollowPair:
    """`async with FollowPair(...) as pair:` write `pair.first`, then
    `await pair.commit_first()`, then write `pair.second`; leaving the block
    commits the second (an exception rolls back whatever is not committed)."""

    __slots__ = (
        "_first_done",
        "_followee_id",
        "_follower_id",
        "_inner",
        "_notifier",
        "_outer",
        "_shards",
        "first",
        "second",
    )

    def __init__(
        self, shards: Shards, notifier: notify.Notifier, follower_id: int, followee_id: int
    ) -> None:
        self._shards = shards
        self._notifier = notifier
        self._follower_id = follower_id
        self._followee_id = followee_id
        self._outer = AsyncExitStack()
        self._inner = AsyncExitStack()
        self._first_done = False

    def __repr__(self) -> str:
        return f"<FollowPair {self._follower_id}->{self._followee_id}>"

    @property
    def follower(self) -> Side:
        return self.second if self.first.followee else self.first

    @property
    def followee(self) -> Side:
        return self.first if self.first.followee else self.second

    async def __aenter__(self) -> FollowPair:
        mine = self._shards.of_user(self._follower_id)
        theirs = self._shards.of_user(self._followee_id)
        if mine is theirs:
            raise ValueError("one database holds both sides: change its one row instead")
        followee_low = self._shards.index_of(theirs) < self._shards.index_of(mine)
        low, high = (theirs, mine) if followee_low else (mine, theirs)
        try:
            hconn, hnotes = await self._outer.enter_async_context(self._notifier.transaction(high))
            lconn, lnotes = await self._inner.enter_async_context(self._notifier.transaction(low))
            await social_repo.lock_pair(lconn, self._follower_id, self._followee_id)
            await social_repo.lock_pair(hconn, self._follower_id, self._followee_id)
        except BaseException:
            await self._close(*sys.exc_info())
            raise
        self.first = Side(lconn, lnotes, followee=followee_low)
        self.second = Side(hconn, hnotes, followee=not followee_low)
        return self

    async def commit_first(self) -> None:
        """Commit the truth (and its job); the second side is still to write."""
        self._first_done = True
        await self._inner.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(exc_type, exc, tb)

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._first_done:
                self._first_done = True
                await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as failed:
            # The first commit failed: the second rolls back with it.
            await self._outer.__aexit__(type(failed), failed, failed.__traceback__)
            raise
        await self._outer.__aexit__(exc_type, exc, tb)
