-- Foundation: IDs, users, tokens, photos, jobs.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Instagram-style 64-bit IDs: 41 bits of milliseconds since the PicShare
-- epoch (2026-01-01T00:00:00Z), 13 bits of logical shard, 10 bits of
-- sequence. They sort by creation time and say where a row lives, so
-- sharding later needs no new format.
CREATE TABLE shard_info (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    shard_id integer NOT NULL CHECK (shard_id BETWEEN 0 AND 8191)
);
INSERT INTO shard_info (shard_id) VALUES (1);

CREATE SEQUENCE picshare_id_seq;

CREATE FUNCTION picshare_next_id() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    epoch_ms constant bigint := 1767225600000;
    now_ms bigint;
    seq bigint;
    shard bigint;
BEGIN
    SELECT shard_id INTO shard FROM shard_info;
    seq := nextval('picshare_id_seq') % 1024;
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    RETURN ((now_ms - epoch_ms) << 23) | (shard << 10) | seq;
END;
$$;

-- @group users
CREATE TABLE users (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    username text NOT NULL CHECK (username ~ '^[a-z0-9_.]{3,30}$'),
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 64),
    bio text NOT NULL DEFAULT '' CHECK (length(bio) <= 300),
    private boolean NOT NULL DEFAULT false,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Denormalized counts, kept exact in the transaction of the write.
    photo_count integer NOT NULL DEFAULT 0 CHECK (photo_count >= 0),
    follower_count integer NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    following_count integer NOT NULL DEFAULT 0 CHECK (following_count >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));
CREATE INDEX users_username_trgm ON users USING gin (username gin_trgm_ops);

-- API bearer tokens and browser sessions: only a SHA-256 of the secret is kept.
CREATE TABLE auth_tokens (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('api', 'session')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

-- @group photos
CREATE TABLE photos (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    owner_id bigint NOT NULL,
    caption text NOT NULL DEFAULT '' CHECK (length(caption) <= 2200),
    tags text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'processing'
        CHECK (status IN ('processing', 'ready', 'rejected', 'failed')),
    mime text NOT NULL,
    width integer NOT NULL CHECK (width > 0),
    height integer NOT NULL CHECK (height > 0),
    bytes bigint NOT NULL CHECK (bytes > 0),
    blurhash text,
    -- The upload as received (with its metadata): never served.
    upload_key text NOT NULL,
    -- Served renditions, content-addressed; NULL until rendered.
    original_key text,
    large_key text,
    medium_key text,
    thumb_key text,
    like_count integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    comment_count integer NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    caption_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', caption)) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_owner_id ON photos (owner_id, id DESC);
CREATE INDEX photos_ready_id ON photos (id DESC) WHERE status = 'ready';
CREATE INDEX photos_tags ON photos USING gin (tags);
CREATE INDEX photos_caption_trgm ON photos USING gin (caption gin_trgm_ops);
CREATE INDEX photos_caption_tsv ON photos USING gin (caption_tsv);
-- Blob garbage collection asks "does any photo still use this key?"
CREATE INDEX photos_upload_key ON photos (upload_key);
CREATE INDEX photos_original_key ON photos (original_key);
CREATE INDEX photos_large_key ON photos (large_key);
CREATE INDEX photos_medium_key ON photos (medium_key);
CREATE INDEX photos_thumb_key ON photos (thumb_key);
-- @group photos users
ALTER TABLE photos ADD CONSTRAINT photos_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE;
-- @group *

-- Durable jobs: the outbox the in-process runner drains. A job is leased
-- (locked_until) so one interrupted by a crash is taken up again.
CREATE TABLE jobs (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    run_after timestamptz NOT NULL DEFAULT now(),
    locked_by text,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX jobs_due ON jobs (run_after) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (locked_until) WHERE status = 'running';
