"""Table groups: the tables that may live in a database of their own
(vertical partitioning, `PICSHARE_DATABASE_GROUP_<GROUP>_URL`).

Every database also has what each needs for itself, whatever it hosts: the ID
function and its shard number, its own `jobs` outbox (a job is enqueued in
the transaction of the change it follows from, so it lives beside that
change), the migrations table and the shard-move fence.

A migration says which group each of its statements belongs to
(`storage/migrate.py`), so a database gets the tables of the groups it hosts
and no others; a statement naming two groups (a foreign key from one to the
other) runs only where both live, as in the default single database.
"""

from __future__ import annotations

USERS = "users"
PHOTOS = "photos"
LIKES = "likes"
COMMENTS = "comments"
NOTIFICATIONS = "notifications"
PAYMENTS = "payments"
SEARCH = "search"
JOBS = "jobs"

GROUPS: tuple[str, ...] = (
    USERS,
    PHOTOS,
    LIKES,
    COMMENTS,
    NOTIFICATIONS,
    PAYMENTS,
    SEARCH,
    JOBS,
)
EVERY_GROUP: frozenset[str] = frozenset(GROUPS)

# Which tables each group holds (the migrations' markers say the same, per
# statement; tests/storage/test_table_groups.py checks the two agree).
TABLES: dict[str, frozenset[str]] = {
    # Users and auth, the follow graph (it belongs to the users it links),
    # and the catalog of a sharded site (map, directory, moves).
    USERS: frozenset(
        {
            "users",
            "auth_tokens",
            "idempotency_keys",
            "follows",
            "follow_requests",
            "user_directory",
            "shard_catalog",
            "shard_map",
            "shard_moves",
            # A user's webhook endpoints, their messages and delivery log.
            "webhook_endpoints",
            "webhook_messages",
            "webhook_deliveries",
        }
    ),
    PHOTOS: frozenset({"photos", "tags"}),
    LIKES: frozenset({"likes"}),
    COMMENTS: frozenset({"comments"}),
    NOTIFICATIONS: frozenset({"notifications"}),
    PAYMENTS: frozenset({"accounts", "transfers", "ledger_entries"}),
    # The search service's index (picshare/search_index.py): beside the
    # photos and users it indexes by default, or in a database of its own,
    # where no statement joins the sources (the privacy rule runs again on
    # the photos' shards).
    SEARCH: frozenset({"search_photos", "search_users", "search_tags", "search_progress"}),
    # The job queue is every database's own outbox (above); the group names
    # it so that operators see where jobs are, and cannot be split off.
    JOBS: frozenset(),
}
EVERY_DATABASE: frozenset[str] = frozenset(
    {
        "schema_migrations",
        "schema_groups",
        "shard_info",
        "jobs",
        "shard_fences",
        # Domain events beside the change they report (picshare/outbox.py),
        # and what each consumer has done (picshare/consumers.py).
        "outbox",
        "processed_events",
        "event_counts",
    }
)

# The groups that can have a database of their own today. USERS is what the
# main database keeps (every other group can leave it); JOBS has no table.
# PHOTOS only without shards (picshare/config.py says why): README, "Table
# groups", says what remains.
SEPARABLE: frozenset[str] = frozenset({PAYMENTS, NOTIFICATIONS, LIKES, COMMENTS, SEARCH, PHOTOS})

# With PHOTOS in a database of its own, the groups whose default place is
# "beside the photo" (a like, a comment and its notification written in one
# transaction on the photo's database; the search index beside its sources)
# cannot stay with the users: unless given databases of their own, they go
# to the photos' database, and take their apart paths there (jobs, keys
# recorded once), so no transaction spans the two.
WITH_PHOTOS: tuple[str, ...] = (LIKES, COMMENTS, NOTIFICATIONS, SEARCH)


# Groups added after databases existed, each with the group it lives beside:
# a database made before it that hosts that group takes it on as well (its
# migration makes the tables there), rather than being refused as a group
# moved in from elsewhere.
ADDED_BESIDE: dict[str, str] = {SEARCH: PHOTOS}


class TableGroupError(ValueError):
    """A setting names no table group."""


def group_named(name: str) -> str:
    """The group a setting names (any case), or an error that lists them."""
    group = name.strip().lower()
    if group not in EVERY_GROUP:
        raise TableGroupError(
            f"no table group {name!r}; the groups are {', '.join(g.upper() for g in GROUPS)}"
        )
    return group
