-- The search service's own index (picshare/search_index.py, README "Tags and
-- search"): one row per photo, written only by the `search` consumer of
-- domain events and by `run.py search reindex`, which fills it from existing
-- photos (run it once after this migration on a site that has photos; a
-- photo not yet indexed is not found by caption).

-- @group search
-- What a caption search needs and nothing more: the words, and what the
-- privacy rule needs (owner, the owner's privacy, status), so that the match
-- and the rule are both answered from this narrow table, newest first.
CREATE TABLE search_photos (
    id bigint PRIMARY KEY,
    owner_id bigint NOT NULL,
    private boolean NOT NULL,
    status text NOT NULL,
    tsv tsvector NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_photos_tsv ON search_photos USING gin (tsv);
-- An owner's privacy change rewrites their rows.
CREATE INDEX search_photos_owner ON search_photos (owner_id);

-- How far `run.py search reindex` went on this database: it resumes there.
CREATE TABLE search_reindex (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    after_id bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- @group photos
-- Fuzzy tags (pg_trgm, as usernames have had since 0001): "sunst" finds
-- "sunset" (the prefix index of 0002 serves prefixes).
CREATE INDEX tags_tag_trgm ON tags USING gin (tag gin_trgm_ops);

-- @group users
-- Fuzzy usernames nearest first (`ORDER BY username <-> q LIMIT n`), which
-- GIN cannot order: it replaces the GIN trigram index of 0001.
CREATE INDEX users_username_gist ON users USING gist (username gist_trgm_ops);
DROP INDEX users_username_trgm;
