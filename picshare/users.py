"""Accounts: sign-up, log-in, tokens and sessions, profile edits."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from picshare import passwords, photo_access, tokens
from picshare.caching import CachedReads
from picshare.config import AuthSettings
from picshare.errors import Conflict, FieldError, InvalidInput, Unauthenticated, invalid
from picshare.jobs import JobKind, JobRunner, PermanentJobError
from picshare.outbox import Outbox
from storage import comments_repo, directory_repo, social_repo, users_repo
from storage.db import Connection
from storage.ids import shard_of
from storage.records import UserRecord
from storage.router import ANY, PRIMARY, Databases, read_your_writes
from storage.shards import Shards

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[a-z0-9_.]{3,30}$")
# Deliberately loose: one @, something on both sides, a dot in the domain.
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
LOGIN_FAILED = "wrong username or password"
MAX_SETTINGS_BYTES = 16 * 1024
MAX_DISPLAY_NAME = 64
MAX_BIO = 300
# The job that puts a new display name in one other shard's comments.
RENAME_IN_COMMENTS = "rename_in_comments"
# Its `database` when comments have a database of their own (not a shard's index).
COMMENTS_APART = -1
# A claim may meet stale claims more than once (each taken over in turn).
_CLAIM_ATTEMPTS = 3
# Writes of a rename job while the name keeps changing under it.
_RENAME_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: UserRecord
    token: str


class UserService:
    __slots__ = ("_auth", "_cached", "_db", "_events", "_jobs")

    def __init__(
        self,
        *,
        db: Shards,
        auth: AuthSettings,
        cached: CachedReads | None = None,
        jobs: JobRunner | None = None,
        events: Outbox | None = None,
    ) -> None:
        self._db = db
        # Where a privacy change is announced (none: nobody listens, as in
        # commands that only read).
        self._events = events
        self._auth = auth
        self._cached = cached
        # Renames on other shards run as its jobs (none: a single database).
        self._jobs = jobs

    def job_kinds(self) -> dict[str, JobKind]:
        return {RENAME_IN_COMMENTS: JobKind(self._rename_in_comments)}

    async def signup(self, *, username: Any, email: Any, password: Any, kind: str) -> SignedIn:
        errors: list[FieldError] = []
        name = _normalize_username(username, errors)
        mail = _normalize_email(email, errors)
        secret = self._check_password(password, errors)
        if errors:
            raise InvalidInput(errors)
        password_hash = await passwords.hash_password(secret)
        home = self._db.of_username(name)
        # The id first (made on the user's shard, naming it), then the name
        # and email claimed in the catalog's directory with that id, then the
        # user row: a crash between the last two leaves a claim without a
        # user, which a later sign-up takes over once it is stale.
        async with home.write() as conn:
            user_id = await users_repo.next_user_id(conn, self._db.logical_for(name))
        await self._claim(user_id, name, mail)
        try:
            async with home.transaction() as conn:
                user = await users_repo.insert_user(
                    conn, user_id=user_id, username=name, email=mail, password_hash=password_hash
                )
                token = await self._issue(conn, user.id, kind)
                if self._events is not None:
                    await self._events.user_created(conn, user)
        except users_repo.DuplicateUser as exc:
            await asyncio.shield(self._release_claim(user_id))
            raise Conflict(f"that {exc.field} is taken", field=exc.field) from None
        except BaseException:
            await asyncio.shield(self._release_unless_made(user_id))
            raise
        if self._events is not None:
            self._events.committed()
        await self._confirm_claim(home, user)
        await home.remember_writer(user.id)
        return SignedIn(user, token)

    async def login(self, *, username: Any, password: Any, kind: str) -> SignedIn:
        if not isinstance(username, str) or not username:
            raise invalid("username", "is required")
        if not isinstance(password, str) or not password:
            raise invalid("password", "is required")
        name = unicodedata.normalize("NFKC", username.strip()).lower()
        home = self._db.of_username(name)
        async with home.read(PRIMARY) as conn:
            user = await users_repo.user_by_username(conn, name)
        # Verify even for an unknown user, so timing does not tell which it was.
        ok = await passwords.verify_password(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthenticated(LOGIN_FAILED)
        async with home.transaction() as conn:
            token = await self._issue(conn, user.id, kind)
        await home.remember_writer(user.id)
        return SignedIn(user, token)

    async def logout(self, token: str) -> None:
        async with self._token_db(token).write() as conn:
            await users_repo.revoke_token(conn, tokens.hash_token(token))

    async def authenticate(self, token: str, kind: str) -> UserRecord | None:
        digest = tokens.hash_token(token)
        db = self._token_db(token)
        async with db.read(ANY) as conn:
            user = await users_repo.user_by_token(conn, digest, kind)
        if user is not None and not await db.wrote_recently(user.id):
            return user
        # A token issued a moment ago may not have reached the replica yet,
        # and one revoked a moment ago (a logout: that user's write) must not
        # keep working there: both are settled on the primary.
        async with db.read(PRIMARY) as conn:
            return await users_repo.user_by_token(conn, digest, kind)

    async def get(self, user_id: int) -> UserRecord | None:
        async with self._db.of_user(user_id).read(read_your_writes(user_id)) as conn:
            return await users_repo.user_by_id(conn, user_id)

    async def by_ids(self, user_ids: list[int], viewer_id: int | None) -> dict[int, UserRecord]:
        """Many users at once: one statement per database holding some of them
        (the batches of the GraphQL DataLoaders, handlers/graphql/loaders.py)."""
        found: dict[int, UserRecord] = {}
        for db, ids in self._db.by_database(user_ids):
            async with db.read(read_your_writes(viewer_id)) as conn:
                found.update((u.id, u) for u in await users_repo.users_by_ids(conn, ids))
        return found

    async def by_username(self, username: str) -> UserRecord | None:
        async with self._db.of_username(username).read(ANY) as conn:
            return await users_repo.user_by_username(conn, username)

    async def update_profile(self, user_id: int, changes: dict[str, Any]) -> UserRecord:
        errors: list[FieldError] = []
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "display_name":
                clean[key] = _text(key, value, MAX_DISPLAY_NAME, errors, single_line=True)
            elif key == "bio":
                clean[key] = _text(key, value, MAX_BIO, errors, single_line=False)
            elif key == "private":
                if not isinstance(value, bool):
                    errors.append(FieldError(key, "must be true or false"))
                clean[key] = value
            elif key == "settings":
                problem = _settings_problem(value)
                if problem:
                    errors.append(FieldError(key, problem))
                clean[key] = value
            else:
                errors.append(FieldError(key, "is not a field you can change"))
        if errors:
            raise InvalidInput(errors)
        hiding = clean.get("private") is True and self._db.photos is not None
        if hiding:
            await photo_access.hide_owner(self._db, user_id)
        try:
            return await self._update(user_id, clean)
        except BaseException:
            if hiding:  # the account stays as it was: so do its photos
                try:
                    await asyncio.shield(photo_access.sync_owner(self._db, user_id))
                except Exception:  # hidden stays hidden: the safe side
                    log.warning("photos of user %s left private after a failed change", user_id)
            raise

    async def _update(self, user_id: int, clean: dict[str, Any]) -> UserRecord:
        home = self._db.of_user(user_id)
        async with home.transaction() as conn:
            before = await users_repo.user_by_id(conn, user_id)
            user = await users_repo.update_user(conn, user_id, clean)
            if before is None or user is None:
                raise Unauthenticated("the account no longer exists")
            renamed = user.display_name != before.display_name
            if renamed:
                await self._rename_everywhere(conn, home, user)
            approved: list[int] | None = None
            if before.private and not user.private:
                # Going public: whoever asked to follow now follows.
                approved = await social_repo.approve_all_requests(conn, user.id)
            # What the search index keeps of the account changed, and so
            # what its photos carry (beside them, a trigger copies it in this
            # transaction; apart, a job does: picshare/photo_access.py).
            indexed = (user.private, user.display_name) != (before.private, before.display_name)
            if indexed and self._db.photos is not None and self._jobs is not None:
                await self._jobs.enqueue(conn, photo_access.OWNER_JOB, {"user_id": user.id})
            if indexed and self._events is not None:
                await self._events.user_updated(conn, user)
        if indexed and self._events is not None:
            self._events.committed()
        moved = renamed or approved is not None or (indexed and self._db.photos is not None)
        if moved and self._jobs is not None:
            self._jobs.wake()  # the renames elsewhere, the approvals across databases
        if self._cached is not None:
            await self._cached.users_changed(user.id, *(approved or ()))
            if (user.private, user.display_name) != (before.private, before.display_name):
                await self._cached.public_changed()  # their photos leave it, or are renamed
            for follower in approved or ():
                await self._cached.feed_changed(follower)
        return user

    async def _rename_everywhere(self, conn: Connection, home: Databases, user: UserRecord) -> None:
        """The user's new display name in the comments' denormalized copies:
        on the user's own shard in this transaction, on every other shard by
        a job enqueued in it (so the edit never waits on, or fails with,
        another shard)."""
        if self._db.comments is not None:
            # Comments in a database of their own: all of them there, by one job.
            if self._jobs is not None:
                await self._jobs.enqueue(
                    conn, RENAME_IN_COMMENTS, {"user_id": user.id, "database": COMMENTS_APART}
                )
            return
        await comments_repo.rename(conn, user.id, user.display_name)
        if self._jobs is None:
            return
        for index, db in enumerate(self._db.physical):
            if db is not home:
                await self._jobs.enqueue(
                    conn, RENAME_IN_COMMENTS, {"user_id": user.id, "database": index}
                )

    async def _rename_in_comments(self, payload: dict[str, Any]) -> None:
        """One shard's comments by the user get the user's current display name,
        read afresh from the user's shard, and read again after writing: an
        older edit's job that wrote its name after a newer job wrote the newer
        one sees the name has moved on and writes it again, so every order of
        runs ends with the user's name of now."""
        user_id = int(payload["user_id"])
        index = int(payload["database"])
        if index == COMMENTS_APART:
            target = self._db.comments
            if target is None:
                return  # comments moved back beside the photos: renamed there
        elif 0 <= index < len(self._db.physical):
            target = self._db.physical[index]
        else:
            raise PermanentJobError(f"no shard database {index} in the settings")
        name = await self._display_name(user_id)
        for _ in range(_RENAME_ROUNDS):
            if name is None:
                return  # the account is gone; so, in time, are its comments
            async with target.write() as conn:
                await comments_repo.rename(conn, user_id, name)
            now = await self._display_name(user_id)
            if now == name:
                return
            name = now
        raise RuntimeError("the display name keeps changing; the job runs again later")

    async def _display_name(self, user_id: int) -> str | None:
        async with self._db.of_user(user_id).read(PRIMARY) as conn:
            user = await users_repo.user_by_id(conn, user_id)
        return None if user is None else user.display_name

    async def _claim(self, user_id: int, username: str, email: str) -> None:
        """Claim the username and email in the directory, taking over stale
        claims; Conflict (409) when a live one holds either."""
        taken = "username"
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                async with self._db.catalog.write() as conn:
                    await directory_repo.claim(
                        conn, user_id=user_id, username=username, email=email
                    )
                return
            except directory_repo.NameTaken as exc:
                taken = exc.field
            live = await self._take_over_stale(username, email)
            if live is not None:
                raise Conflict(f"that {live} is taken", field=live)
        raise Conflict(f"that {taken} is taken", field=taken)

    async def _take_over_stale(self, username: str, email: str) -> str | None:
        """Drop the stale claims on this username or email: old ones whose
        user row does not exist. The field a live claim holds, or None when
        every conflicting claim was stale (and is gone now)."""
        async with self._db.catalog.read(PRIMARY) as conn:
            claims = await directory_repo.conflicting(conn, username=username, email=email)
        live: list[str] = []
        for claim in claims:
            if claim.old and not await self._user_exists(claim.user_id):
                async with self._db.catalog.write() as conn:
                    if await directory_repo.drop_stale(conn, claim.user_id):
                        log.warning("took over the stale directory claim of user %s", claim.user_id)
                continue
            live.append("username" if claim.username.lower() == username else "email")
        if not live:
            return None
        return "username" if "username" in live else "email"

    async def _user_exists(self, user_id: int) -> bool:
        async with self._db.of_user(user_id).read(PRIMARY) as conn:
            return await users_repo.user_by_id(conn, user_id) is not None

    async def _release_unless_made(self, user_id: int) -> None:
        """After a failure that may have come after the commit (a cancel, a
        lost connection): give the claim back only if the user row is surely
        not there; when that cannot be told, the claim stays, to be taken over
        once stale if the row indeed never arrived."""
        try:
            made = await self._user_exists(user_id)
        except Exception:
            log.warning("sign-up of user %s failed; its claim waits to turn stale", user_id)
            return
        if not made:
            await self._release_claim(user_id)

    async def _release_claim(self, user_id: int) -> None:
        try:
            async with self._db.catalog.write() as conn:
                await directory_repo.release(conn, user_id)
        except Exception:
            # Left behind, the claim turns stale and the next sign-up takes it.
            log.warning("could not release the directory claim of user %s", user_id, exc_info=True)

    async def _confirm_claim(self, home: Databases, user: UserRecord) -> None:
        """The claim must still be ours now that the user row exists: one taken
        over as stale while this sign-up stalled for a minute belongs to
        another sign-up now, and this one is undone."""
        async with self._db.catalog.read(PRIMARY) as conn:
            if await directory_repo.holds(conn, user.id):
                return
        async with home.write() as conn:
            await users_repo.delete_user(conn, user.id)
        raise Conflict("that username is taken", field="username")

    def _token_db(self, token: str) -> Databases:
        """The database holding a token: its user's shard, which the token
        names; the catalog for a token that names none (made before shards)."""
        logical = tokens.logical_of(token)
        return self._db.catalog if logical is None else self._db.of_logical(logical)

    async def _issue(self, conn: Any, user_id: int, kind: str) -> str:
        days = self._auth.session_days if kind == "session" else self._auth.token_days
        token = tokens.new_token(shard_of(user_id))
        await users_repo.insert_token(
            conn,
            user_id=user_id,
            token_hash=tokens.hash_token(token),
            kind=kind,
            expires_at=datetime.now(UTC) + timedelta(days=days),
        )
        return token

    def _check_password(self, password: Any, errors: list[FieldError]) -> str:
        if not isinstance(password, str):
            errors.append(FieldError("password", "is required"))
            return ""
        if not self._auth.password_min <= len(password) <= self._auth.password_max:
            errors.append(
                FieldError(
                    "password",
                    f"must be {self._auth.password_min} to {self._auth.password_max} characters",
                )
            )
        return password


MAX_SETTINGS_DEPTH = 8
INT64 = 2**63


def _settings_problem(value: Any) -> str | None:
    """Why `settings` cannot be stored and read back as it was, or None."""
    if not isinstance(value, dict):
        return "must be a JSON object"

    def bad(node: Any, depth: int) -> str | None:
        if depth > MAX_SETTINGS_DEPTH:
            return f"may nest at most {MAX_SETTINGS_DEPTH} levels"
        if isinstance(node, dict):
            for k, v in node.items():
                if len(k) > 100 or "\x00" in k:
                    return "keys must be at most 100 characters, without NUL"
                if found := bad(v, depth + 1):
                    return found
        elif isinstance(node, list):
            for v in node:
                if found := bad(v, depth + 1):
                    return found
        elif isinstance(node, str) and "\x00" in node:
            return "strings must not contain NUL"
        elif isinstance(node, bool) or node is None:
            pass  # bool is an int subclass: keep it out of the 64-bit check below
        elif isinstance(node, int) and not -INT64 <= node < INT64:
            # jsonb keeps 1e20 as an exact integer that JSON encoders then refuse.
            return "numbers must fit in 64 bits"
        elif isinstance(node, float) and not math.isfinite(node):
            return "numbers must be finite"
        return None

    if found := bad(value, 1):
        return found
    if len(orjson.dumps(value)) > MAX_SETTINGS_BYTES:
        return f"must be at most {MAX_SETTINGS_BYTES} bytes"
    return None


def _normalize_username(value: Any, errors: list[FieldError]) -> str:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError("username", "is required"))
        return ""
    # Case-insensitive: stored lower-case, as Instagram does.
    name = unicodedata.normalize("NFKC", value.strip()).lower()
    if not USERNAME.match(name):
        errors.append(FieldError("username", "must be 3 to 30 of a-z, 0-9, underscore and dot"))
    return name


def _normalize_email(value: Any, errors: list[FieldError]) -> str:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError("email", "is required"))
        return ""
    mail = value.strip()
    if len(mail) > 254 or not EMAIL.match(mail):
        errors.append(FieldError("email", "is not an email address"))
    return mail


def _text(
    field: str, value: Any, limit: int, errors: list[FieldError], *, single_line: bool
) -> str:
    if not isinstance(value, str):
        errors.append(FieldError(field, "must be a string"))
        return ""
    # Browsers send a textarea's line breaks as CRLF; store plain newlines.
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").strip())
    if single_line and ("\n" in text or "\r" in text):
        errors.append(FieldError(field, "must be one line"))
    if len(text) > limit:
        errors.append(FieldError(field, f"must be at most {limit} characters"))
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        errors.append(FieldError(field, "must not contain control characters"))
    return text
