"""The privacy rule: who may see a photo, an account's photos and lists, and
which media may have plain URLs. Every read, page and URL signer asks here.

- An account's photos and lists (followers, following) are visible to
  everyone when it is public; when it is private, to its owner and approved
  followers only (a pending request is not a follow).
- A photo is visible to its owner always (processing, failed or rejected
  too); to anyone else once it is ready, if they may see the account.
- A photo visible to everyone, anonymous included, has plain immutable media
  URLs; any other photo's are signed and expire, so a URL that leaks or
  outlives a follow stops working.

The rule is evaluated on rows already loaded: the caller passes whether the
viewer follows the owner, fetched with whatever else it reads (and only when
`needs_follow` says the answer depends on it), so asking costs no query.
Queries that filter many rows use the same rule in SQL (`VISIBLE`, `PUBLIC`,
rendered by storage/visibility.py); tests/picshare/test_privacy_rule.py
checks every surface against both.

With shards the rule is evaluated on the owner's shard, the same way on
every shard: the owner's photos are there, and so is a row for every follow
of the owner (the followee's side, picshare/social.py), so "does the viewer
follow the owner" never leaves that database.
"""

from __future__ import annotations

from storage import social_repo
from storage.db import Connection
from storage.records import PhotoRecord, PhotoStatus, UserRecord

__all__ = [
    "can_delete_comment",
    "can_delete_photo",
    "can_react",
    "can_see_account",
    "can_see_photo",
    "may_see_account",
    "needs_follow",
    "signed_media",
]


def needs_follow(owner_id: int, private: bool, viewer_id: int | None) -> bool:
    """Does what this viewer may see of the account depend on a follow?"""
    return private and viewer_id is not None and viewer_id != owner_id


def can_see_account(owner_id: int, private: bool, viewer_id: int | None, *, follows: bool) -> bool:
    """May the viewer see the account's photos and lists?"""
    return not private or viewer_id == owner_id or (viewer_id is not None and follows)


async def may_see_account(conn: Connection, owner: UserRecord, viewer_id: int | None) -> bool:
    """`can_see_account`, reading the follow only when the answer depends on it."""
    follows = False
    if viewer_id is not None and needs_follow(owner.id, owner.private, viewer_id):
        follows = (await social_repo.relationship(conn, viewer_id, owner.id)).following
    return can_see_account(owner.id, owner.private, viewer_id, follows=follows)


# These two run per photo on every read (the cached detail, each item of a
# list): written out flat rather than composed, a fraction of a microsecond each.
_READY = PhotoStatus.READY


def can_see_photo(photo: PhotoRecord, viewer_id: int | None, *, follows: bool) -> bool:
    if photo.owner_id == viewer_id:
        return True
    # can_see_account, for a viewer who is not the owner.
    return photo.status == _READY and (
        not photo.owner_private or (viewer_id is not None and follows)
    )


def signed_media(photo: PhotoRecord) -> bool:
    """Must this photo's media URLs be signed? Unless everyone may see it:
    `not can_see_photo(photo, None, follows=False)`, for the anonymous viewer."""
    return photo.owner_private or photo.status != _READY


# What a viewer who may see a photo may do with it.


def can_react(photo: PhotoRecord) -> bool:
    """Likes and comments go to ready photos only (not to an owner's pending one)."""
    return photo.status == PhotoStatus.READY


def can_delete_photo(photo: PhotoRecord, user_id: int | None) -> bool:
    return user_id is not None and user_id == photo.owner_id


def can_delete_comment(author_id: int, photo: PhotoRecord, user_id: int | None) -> bool:
    """The comment's author, or the owner of the photo it is on."""
    return user_id is not None and user_id in (author_id, photo.owner_id)
