"""`run.py seed`: a realistic volume of users, photos, follows, likes and comments, fast.

Rows go in with COPY; denormalized counts are recomputed afterwards in SQL.
Photos reuse a handful of real images rendered by the normal pipeline, so a
seeded site can be browsed. Every seeded user's password is SEED_PASSWORD.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from picshare import passwords
from picshare.media import RenditionSpec, make_original, render_display
from picshare.media.source import local_file
from picshare.progress import Progress
from storage import seed_repo
from storage.blobs import BlobStore
from storage.ids import EPOCH_MS, compose, shard_of
from storage.records import PhotoStatus
from storage.router import Databases
from storage.shards import Shards

SEED_PASSWORD = "seed-password"  # noqa: S105 - documented, for seeded demo users only
HEAVY_USER = "seed_heavy"
WORDS = [
    "sunset",
    "beach",
    "city",
    "night",
    "coffee",
    "friends",
    "mountain",
    "river",
    "street",
    "food",
    "travel",
    "dog",
    "cat",
    "morning",
    "forest",
    "snow",
    "summer",
    "rain",
    "light",
    "shadow",
    "bridge",
    "market",
    "garden",
    "harbour",
    "train",
    "portrait",
    "smile",
    "concert",
    "museum",
    "bike",
    "road",
    "lake",
    "sky",
    "cloud",
    "flower",
    "autumn",
    "spring",
]
TAGS = [
    "travel",
    "food",
    "nature",
    "city",
    "sunset",
    "portrait",
    "street",
    "architecture",
    "dog",
    "cat",
    "summer",
    "winter",
    "blackandwhite",
    "beach",
    "mountains",
    "art",
    "music",
    "friends",
    "coffee",
    "fitness",
]


@dataclass(frozen=True, slots=True)
class SeedPlan:
    users: int = 20_000
    photos: int = 200_000
    likes: int = 1_000_000
    follows_per_user: int = 30
    heavy_follows: int = 1_000
    comments: int = 50_000
    images: int = 8
    seed: int = 42


@dataclass(frozen=True, slots=True)
class SeedReport:
    users: int
    photos: int
    follows: int
    likes: int
    comments: int
    seconds: float


class _Ids:
    """IDs made here, in time order, each with the logical shard of the row's
    user: seeded rows lie in the recent past, before anything made live."""

    def __init__(self, total: int) -> None:
        self._ms = int(time.time() * 1000) - EPOCH_MS - total // 1024 - 60_000
        self._n = 0

    def next(self, logical: int) -> int:
        made = compose(self._ms + self._n // 1024, logical, self._n % 1024)
        self._n += 1
        return made


class _PerShard:
    """Rows bound for each database, COPY'd one table at a time."""

    def __init__(self, shards: Shards) -> None:
        self.shards = shards
        self.rows: dict[Databases, list[tuple[Any, ...]]] = {}

    def add(self, db: Databases, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(db, []).append(row)

    def of_id(self, id_: int) -> Databases:
        return self.shards.of_id(id_)

    async def copy(
        self, table: str, columns: tuple[str, ...], progress: Callable[[int], None]
    ) -> int:
        done = 0
        order = self.shards.everything()
        for db, rows in sorted(self.rows.items(), key=lambda item: order.index(item[0])):
            async with db.write() as conn:
                done += await seed_repo.copy_rows(conn, table, columns, rows)
            progress(done)
        self.rows = {}
        return done


async def seed(db: Shards, blobs: BlobStore, plan: SeedPlan, *, quiet: bool = False) -> SeedReport:
    """Seed across every shard: each row on the database of the user it lives
    with (README, "What lives where"), the directory in the catalog."""
    if db.photos is not None:
        # Its counts are made by joins of users and photos (seed_repo.recount).
        raise ValueError(
            "seeding a site whose PHOTOS group has a database of its own is not supported yet"
        )
    started = time.monotonic()
    rng = random.Random(plan.seed)
    progress = Progress(quiet)
    images = await _images(blobs, plan.images, rng)
    password_hash = await passwords.hash_password(SEED_PASSWORD)
    ids = _Ids(plan.users + plan.photos + plan.comments + plan.users * plan.follows_per_user)
    out = _PerShard(db)
    # Varied names (as real ones are: search quality depends on it), unique
    # by their number, and across repeated seeds by the run's tag.
    tag = f"{rng.randrange(16**3):03x}"
    names = [f"{HEAVY_USER}_{tag}"] + [
        f"{rng.choice(WORDS)}.{rng.choice(WORDS)}.{tag}{i}" for i in range(1, plan.users)
    ]
    user_ids = [ids.next(db.logical_for(n)) for n in names]
    # Each photo carries its owner's name and privacy (migration 0019).
    owner_fields: dict[int, tuple[str, str, bool]] = {}
    for i, (uid, n) in enumerate(zip(user_ids, names, strict=True)):
        owner_fields[uid] = (n, n.title(), i % 20 == 7)
        row = (
            uid,
            n,
            f"{n}@seed.example",
            password_hash,
            n.title(),
            _sentence(rng, 6),
            i % 20 == 7,
        )
        out.add(out.of_id(uid), row)
    await out.copy("users", _USER_COLUMNS, progress.stage("users", len(names)))
    async with db.catalog.write() as conn:
        await seed_repo.copy_rows(
            conn,
            "user_directory",
            ("user_id", "username", "email"),
            ((uid, n, f"{n}@seed.example") for uid, n in zip(user_ids, names, strict=True)),
        )
    heavy = user_ids[0]
    photo_ids: list[int] = []
    for row in _photos(rng, plan, user_ids, images):
        photo_id = ids.next(shard_of(row[0]))
        photo_ids.append(photo_id)
        out.add(out.of_id(photo_id), (photo_id, *row, *owner_fields[row[0]]))
    await out.copy("photos", _PHOTO_COLUMNS, progress.stage("photos", plan.photos))
    follows = _follows(rng, plan, user_ids, heavy)
    for follower, followee in follows:
        # One row on each side's database (once when both are on one).
        follow_id = ids.next(shard_of(follower))
        for side in dict.fromkeys((out.of_id(follower), out.of_id(followee))):
            out.add(side, (follow_id, follower, followee))
    await out.copy(
        "follows", ("id", "follower_id", "followee_id"), progress.stage("follows", len(follows))
    )
    likes = _likes(rng, plan.likes, photo_ids, user_ids)
    for photo_id, user_id in likes:
        out.add(db.likes_of(photo_id), (photo_id, user_id))
    await out.copy("likes", ("photo_id", "user_id"), progress.stage("likes", len(likes)))
    by_id = dict(zip(user_ids, names, strict=True))
    comment_counts: Counter[int] = Counter()
    for _ in range(plan.comments):
        photo_id, user_id = rng.choice(photo_ids), rng.choice(user_ids)
        comment_id = ids.next(shard_of(photo_id))
        name = by_id[user_id]
        comment = (comment_id, photo_id, user_id, name, name.title(), _sentence(rng, 8))
        out.add(db.comments_of(photo_id), comment)
        comment_counts[photo_id] += 1
    await out.copy("comments", _COMMENT_COLUMNS, progress.stage("comments", plan.comments))
    recount = progress.stage("recount", 2 * len(db.physical))
    # Where likes or comments have a database of their own, the photos'
    # counts come from the rows just made rather than from a join with them.
    like_counts = None if db.likes is None else Counter(photo_id for photo_id, _ in likes)
    made_comments = None if db.comments is None else comment_counts
    for i, shard in enumerate(db.physical):
        async with shard.write() as conn:
            await seed_repo.recount(conn, like_counts=like_counts, comment_counts=made_comments)
            recount(2 * i + 1)
            await seed_repo.analyze(conn)
            recount(2 * i + 2)
    return SeedReport(
        users=len(user_ids),
        photos=len(photo_ids),
        follows=len(follows),
        likes=len(likes),
        comments=plan.comments,
        seconds=time.monotonic() - started,
    )


_USER_COLUMNS = ("id", "username", "email", "password_hash", "display_name", "bio", "private")
_PHOTO_COLUMNS = (
    "id",
    "owner_id",
    "caption",
    "tags",
    "status",
    "mime",
    "width",
    "height",
    "bytes",
    "blurhash",
    "upload_key",
    "original_key",
    "large_key",
    "medium_key",
    "thumb_key",
    "owner_username",
    "owner_display_name",
    "owner_private",
)
_COMMENT_COLUMNS = ("id", "photo_id", "user_id", "username", "display_name", "text")


async def _images(blobs: BlobStore, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """A few real photos, rendered and stored like uploads, shared by every seeded photo."""
    made = []
    for i in range(count):
        raw = await asyncio.to_thread(_picture, rng.randrange(1 << 30), i)
        upload_key = f"uploads/{hashlib.sha256(raw).hexdigest()}"
        await blobs.put_bytes(upload_key, raw)
        # The way uploads are rendered: display renditions, then the original.
        async with local_file(blobs.read(upload_key)) as path:
            result = await asyncio.to_thread(render_display, str(path), RenditionSpec())
            original = await asyncio.to_thread(make_original, str(path), RenditionSpec())
        keys = {}
        for name, data in {**result.renditions, "original": original.data}.items():
            keys[name] = f"r/{hashlib.sha256(data).hexdigest()}.jpg"
            await blobs.put_bytes(keys[name], data)
        made.append(
            {
                "upload": upload_key,
                "keys": keys,
                "size": len(raw),
                "width": result.width,
                "height": result.height,
                "blurhash": result.blurhash,
            }
        )
    return made


def _picture(seed: int, index: int) -> bytes:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = (1200, 900) if index % 3 else (900, 1200)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 160)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, words + 1)))


def _photos(
    rng: random.Random, plan: SeedPlan, user_ids: list[int], images: list[dict[str, Any]]
) -> Iterator[tuple[Any, ...]]:
    # A few prolific posters and a long tail, as on real sites.
    weights = [1.0 / (1 + i % 500) ** 0.6 for i in range(len(user_ids))]
    owners = rng.choices(user_ids, weights=weights, k=plan.photos)
    for owner in owners:
        image = images[rng.randrange(len(images))]
        tags = sorted(set(rng.sample(TAGS, rng.randrange(0, 4))))
        caption = _sentence(rng, 10) + "".join(f" #{t}" for t in tags[:1])
        keys = image["keys"]
        yield (
            owner,
            caption,
            tags,
            PhotoStatus.READY.value,
            "image/jpeg",
            image["width"],
            image["height"],
            image["size"],
            image["blurhash"],
            image["upload"],
            keys["original"],
            keys["large"],
            keys["medium"],
            keys["thumb"],
        )


def _follows(
    rng: random.Random, plan: SeedPlan, user_ids: list[int], heavy: int
) -> list[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    others = user_ids[1:]
    for followee in rng.sample(others, min(plan.heavy_follows, len(others))):
        pairs.add((heavy, followee))
    for follower in others:
        for followee in rng.sample(user_ids, min(plan.follows_per_user, len(user_ids))):
            if followee != follower:
                pairs.add((follower, followee))
    return sorted(pairs)


def _likes(
    rng: random.Random, count: int, photo_ids: list[int], user_ids: list[int]
) -> list[tuple[int, int]]:
    count = min(count, len(photo_ids) * len(user_ids))
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < count:
        chosen.add((rng.choice(photo_ids), rng.choice(user_ids)))
    return sorted(chosen)
