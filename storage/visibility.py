"""The privacy rule of `picshare/privacy.py`, written as SQL for the queries
that filter many rows at once (lists, tags, search, media).

This module only renders that rule; it decides nothing of its own. A change
to who may see what is made in `picshare/privacy.py` and here together, and
tests/picshare/test_privacy_rule.py checks every surface against both.
"""

from __future__ import annotations

from storage.db import sql_literal
from storage.records import PhotoStatus

_READY = sql_literal(PhotoStatus.READY)


def photo_visible(
    viewer: str | None, *, photo: str = "p", owner: str = "u", follows: str | None = None
) -> str:
    """The predicate "the viewer may see this photo" over `photos {photo}`
    joined to its owner `users {owner}`.

    `viewer` is the SQL expression of the viewer's id (a parameter such as
    `$1`, NULL when anonymous), or None for "whoever asks", anonymous
    included: then no follow can help, and the predicate needs no subquery.
    `follows` is the SQL of "the viewer follows the owner" where the
    `follows` table is not at hand (the search index in a database of its
    own passes the viewer's followees); by default it is read from there.
    """
    public = f"{photo}.status = {_READY} AND NOT {owner}.private"
    if viewer is None:
        return f"({public})"
    if follows is None:
        follows = (
            f"EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = {viewer} "
            f"AND f.followee_id = {photo}.owner_id)"
        )
    return (
        f"({photo}.owner_id = {viewer} OR ({photo}.status = {_READY} AND (NOT {owner}.private "
        f"OR {follows})))"
    )


# The two forms every query uses: `$1` is the viewer (NULL when anonymous).
VISIBLE = photo_visible("$1")
PUBLIC = photo_visible(None)
