-- Usernames and tags in the search service's own index (picshare/search_index.py,
-- README "Tags and search"), beside `search_photos`: written only by the
-- `search` consumer (user.created, user.updated, photo.uploaded,
-- photo.deleted) and by `run.py search reindex`, which fills them from the
-- users and tags already there (run it once after this migration).

-- @group search
-- One row per account: what a name search shows (the list entry).
CREATE TABLE search_users (
    id bigint PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    private boolean NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now()
);
-- Prefixes ("mari" finds "marigold", with the id: an index-only scan), and
-- fuzzy names nearest first (`ORDER BY username <-> q LIMIT n`, which GIN
-- cannot order).
CREATE INDEX search_users_prefix ON search_users (username text_pattern_ops) INCLUDE (id);
CREATE INDEX search_users_trgm ON search_users USING gist (username gist_trgm_ops);

-- One row per tag per database whose `tags` counted it (`source`: its place
-- among the shards): where the index has a database of its own, it holds
-- every shard's counts, and a tag's total is their sum.
CREATE TABLE search_tags (
    tag text NOT NULL,
    source integer NOT NULL,
    photo_count integer NOT NULL CHECK (photo_count > 0),
    PRIMARY KEY (tag, source)
);
CREATE INDEX search_tags_prefix ON search_tags (tag text_pattern_ops);
CREATE INDEX search_tags_trgm ON search_tags USING gin (tag gin_trgm_ops);

-- How far `run.py search reindex` went, per source database and kind
-- (photos, users): a run resumes there. It replaces the one-row
-- `search_reindex`, which knew one source only.
CREATE TABLE search_progress (
    source integer NOT NULL,
    kind text NOT NULL,
    after_id bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (source, kind)
);
DROP TABLE search_reindex;
