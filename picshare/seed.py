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
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from picshare import passwords
from picshare.media import RenditionSpec, make_original, render_display
from storage import seed_repo
from storage.blobs import BlobStore
from storage.records import PhotoStatus
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


class Progress:
    """One line per stage on stderr, redrawn in place: `[likes] 400,000/1,000,000`."""

    def __init__(self, quiet: bool = False) -> None:
        self._quiet = quiet

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        def show(done: int) -> None:
            if self._quiet:
                return
            bar = "#" * int(30 * done / max(total, 1))
            sys.stderr.write(f"\r[{name:>8}] {bar:<30} {done:>10,}/{total:,}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        show(0)
        return show


async def seed(db: Shards, blobs: BlobStore, plan: SeedPlan, *, quiet: bool = False) -> SeedReport:
    started = time.monotonic()
    rng = random.Random(plan.seed)
    progress = Progress(quiet)
    images = await _images(blobs, plan.images, rng)
    password_hash = await passwords.hash_password(SEED_PASSWORD)
    async with db.unrouted.write() as conn:
        # Varied names (as real ones are: search quality depends on it), unique
        # by their number, and across repeated seeds by the run's tag.
        tag = f"{rng.randrange(16**3):03x}"
        names = [f"{HEAVY_USER}_{tag}"] + [
            f"{rng.choice(WORDS)}.{rng.choice(WORDS)}.{tag}{i}" for i in range(1, plan.users)
        ]
        await seed_repo.copy_rows(
            conn,
            "users",
            ("username", "email", "password_hash", "display_name", "bio", "private"),
            (
                (n, f"{n}@seed.example", password_hash, n.title(), _sentence(rng, 6), i % 20 == 7)
                for i, n in enumerate(names)
            ),
            progress=progress.stage("users", len(names)),
        )
        user_ids = [
            int(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM users WHERE username = ANY($1::text[]) ORDER BY id", names
            )
        ]
        heavy = user_ids[0]
        photo_rows = _photos(rng, plan, user_ids, images)
        await seed_repo.copy_rows(
            conn,
            "photos",
            (
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
            ),
            photo_rows,
            progress=progress.stage("photos", plan.photos),
        )
        photo_ids = [
            int(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM photos WHERE owner_id = ANY($1::bigint[])", user_ids
            )
        ]
        follows = _follows(rng, plan, user_ids, heavy)
        await seed_repo.copy_rows(
            conn,
            "follows",
            ("follower_id", "followee_id"),
            follows,
            progress=progress.stage("follows", len(follows)),
        )
        likes = _likes(rng, plan.likes, photo_ids, user_ids)
        await seed_repo.copy_rows(
            conn,
            "likes",
            ("photo_id", "user_id"),
            likes,
            progress=progress.stage("likes", len(likes)),
        )
        by_id = dict(zip(user_ids, names, strict=True))
        await seed_repo.copy_rows(
            conn,
            "comments",
            ("photo_id", "user_id", "username", "display_name", "text"),
            (
                (rng.choice(photo_ids), u, by_id[u], by_id[u].title(), _sentence(rng, 8))
                for u in (rng.choice(user_ids) for _ in range(plan.comments))
            ),
            progress=progress.stage("comments", plan.comments),
        )
        recount = progress.stage("recount", 2)
        await seed_repo.recount(conn)
        recount(1)
        await seed_repo.analyze(conn)
        recount(2)
    return SeedReport(
        users=len(user_ids),
        photos=len(photo_ids),
        follows=len(follows),
        likes=len(likes),
        comments=plan.comments,
        seconds=time.monotonic() - started,
    )


async def _images(blobs: BlobStore, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """A few real photos, rendered and stored like uploads, shared by every seeded photo."""
    made = []
    for i in range(count):
        raw = await asyncio.to_thread(_picture, rng.randrange(1 << 30), i)
        upload_key = f"uploads/{hashlib.sha256(raw).hexdigest()}"
        await blobs.put_bytes(upload_key, raw)
        path = await blobs.local_copy(upload_key)
        # The way uploads are rendered: display renditions, then the original.
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
