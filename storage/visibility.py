"""The privacy rule of `picshare/privacy.py`, written as SQL for the queries
that filter many rows at once (lists, tags, search, media).

This module only renders that rule; it decides nothing of its own. A change
to who may see what is made in `picshare/privacy.py` and here together, and
tests/picshare/test_privacy_rule.py checks every surface against both.
"""

from __future__ import annotations

import functools

from storage.db import sql_literal
from storage.records import PhotoStatus

_READY = sql_literal(PhotoStatus.READY)


def photo_visible(
    viewer: str | None, *, photo: str = "p", private: str | None = None, follows: str | None = None
) -> str:
    """The predicate "the viewer may see this photo" over `photos {photo}`.

    `private` is the SQL of "the owner's account is private": by default the
    photo's own copy (`owner_private`, migration 0019), so no list joins
    `users` and the photos may live apart from them.

    `viewer` is the SQL expression of the viewer's id (a parameter such as
    `$1`, NULL when anonymous), or None for "whoever asks", anonymous
    included: then no follow can help, and the predicate needs no subquery.
    `follows` is the SQL of "the viewer follows the owner" where the
    `follows` table is not at hand (the search index in a database of its
    own passes the viewer's followees); by default it is read from there.
    """
    if private is None:
        private = f"{photo}.owner_private"
    public = f"{photo}.status = {_READY} AND NOT {private}"
    if viewer is None:
        return f"({public})"
    if follows is None:
        follows = (
            f"EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = {viewer} "
            f"AND f.followee_id = {photo}.owner_id)"
        )
    return (
        f"({photo}.owner_id = {viewer} OR ({photo}.status = {_READY} AND (NOT {private} "
        f"OR {follows})))"
    )


# The two forms every query uses: `$1` is the viewer (NULL when anonymous).
VISIBLE = photo_visible("$1")
PUBLIC = photo_visible(None)


@functools.cache
def followees_given(sql: str, n: int) -> str:
    """`sql`, a statement over `photos p` with `VISIBLE`, with the follow
    asked of the viewer's followees given as parameter `$n` (a bigint array)
    instead of the `follows` table: where the photos do not share a database
    with the users (README, "Table groups"), the service reads the followees
    first from the viewer's database, as the sharded home feed does."""
    if VISIBLE not in sql:
        raise ValueError("the statement does not apply the privacy rule as VISIBLE")
    return sql.replace(VISIBLE, photo_visible("$1", follows=f"p.owner_id = ANY(${n}::bigint[])"))
