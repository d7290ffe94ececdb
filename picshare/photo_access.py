"""What the privacy rule (picshare/privacy.py) needs of the follow graph,
wherever the photos live (`Shards.photos`, README "Table groups").

Beside the users (the default) a photo's statement reads `follows` itself
(storage/visibility.py). In a database of their own, no `follows` is there:
the viewer's followees are read first from the viewer's database and given
to the statement (`owner_id = ANY(...)`), as the sharded home feed does, and
one photo is read as it is and decided here by the rule, with the follow
from its owner's database (that side of every follow is there).
"""

from __future__ import annotations

from picshare import privacy
from storage import photos_repo, social_repo, users_repo
from storage.records import PhotoRecord
from storage.router import PRIMARY, Consistency, read_your_writes
from storage.shards import Shards


async def followees(db: Shards, viewer_id: int | None) -> list[int] | None:
    """The viewer's followees where a photo statement must be given them,
    else None (it reads `follows` beside the photos)."""
    if db.photos is None:
        return None
    if viewer_id is None:
        return []
    async with db.of_user(viewer_id).read(read_your_writes(viewer_id)) as conn:
        return await social_repo.followee_ids(conn, viewer_id)


async def visible_photo(
    db: Shards, photo_id: int, viewer_id: int | None, consistency: Consistency
) -> PhotoRecord | None:
    """The photo if this viewer may see it, else None (callers answer 404)."""
    async with db.photos_of(photo_id).read(consistency) as conn:
        if db.photos is None:
            return await photos_repo.photo_for(conn, photo_id, viewer_id)
        photo = await photos_repo.photo_by_id(conn, photo_id)
    if photo is None:
        return None
    follows = False
    if viewer_id is not None and privacy.needs_follow(
        photo.owner_id, photo.owner_private, viewer_id
    ):
        async with db.of_user(photo.owner_id).read(consistency) as conn:
            follows = await social_repo.follows(conn, viewer_id, photo.owner_id)
    return photo if privacy.can_see_photo(photo, viewer_id, follows=follows) else None


# -- the owner's copies on a photos database apart ------------------------------

# A user's new display name or privacy, for their photos in the photos'
# database: enqueued in the change's transaction (picshare/users.py).
OWNER_JOB = "photos.owner"


async def hide_owner(db: Shards, user_id: int) -> None:
    """Where the photos live apart: an account about to go private has its
    photos say so first, before its own change commits, so that no list
    shows them to strangers in between (the job after the change would
    leave a window of its pickup). The tighter rule first; if the change
    then fails, `sync_owner` puts the copies back as the account is (the
    caller's), and a crash in between leaves them hidden, never shown."""
    photos = db.photos
    if photos is None:
        return
    async with photos.write() as conn:
        await photos_repo.hide_owner(conn, user_id)


async def sync_owner(db: Shards, user_id: int) -> None:
    """The user's photos take the user's fields as they are now, read from the
    user's database: whatever order jobs run in, and an upload that read the
    owner just before a change, the copies end as the owner is. Nothing to
    do where the photos share the owner's database (its trigger keeps them)."""
    photos = db.photos
    if photos is None:
        return
    async with db.of_user(user_id).read(PRIMARY) as conn:
        user = await users_repo.user_by_id(conn, user_id)
    if user is None:
        return  # the account is gone
    owner = photos_repo.OwnerFields(user.username, user.display_name, user.private)
    async with photos.write() as conn:
        await photos_repo.set_owner_fields(conn, user_id, owner)
