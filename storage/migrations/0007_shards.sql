-- Shards (storage/shards.py): every database gets the same tables; the
-- catalog's shard_map says which database holds each logical shard.

-- An ID made for a row that lives with a user carries that user's logical
-- shard, not this database's default: picshare_next_id(logical).
CREATE FUNCTION picshare_next_id(logical integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    epoch_ms constant bigint := 1767225600000;
    now_ms bigint;
    seq bigint;
BEGIN
    IF logical < 0 OR logical > 8191 THEN
        RAISE EXCEPTION 'logical shard % is out of range', logical;
    END IF;
    seq := nextval('picshare_id_seq') % 1024;
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    RETURN ((now_ms - epoch_ms) << 23) | (logical::bigint << 10) | seq;
END;
$$;

-- @group users
-- Used in the catalog database only (storage/shard_map.py).
CREATE TABLE shard_catalog (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    router text NOT NULL,
    logical_shards integer NOT NULL CHECK (logical_shards BETWEEN 1 AND 8192),
    version bigint NOT NULL DEFAULT 0
);
CREATE TABLE shard_map (
    logical integer PRIMARY KEY CHECK (logical BETWEEN 0 AND 8191),
    physical integer NOT NULL CHECK (physical >= 0)
);

-- The directory (catalog only): usernames and emails unique across shards.
-- A user's row lives on its shard; this row is claimed first, at sign-up.
CREATE TABLE user_directory (
    user_id bigint PRIMARY KEY,
    username text NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_directory_username ON user_directory (lower(username));
CREATE UNIQUE INDEX user_directory_email ON user_directory (lower(email));

-- A like, comment, follow or notification may name a user (or a photo) of
-- another shard: such references cannot be foreign keys. References within
-- one user's data (a photo's owner, a like's photo) stay.
-- @group likes users
ALTER TABLE likes DROP CONSTRAINT likes_user_id_fkey;
-- @group comments users
ALTER TABLE comments DROP CONSTRAINT comments_user_id_fkey;
-- @group users
ALTER TABLE follows DROP CONSTRAINT follows_follower_id_fkey;
ALTER TABLE follows DROP CONSTRAINT follows_followee_id_fkey;
ALTER TABLE follow_requests DROP CONSTRAINT follow_requests_requester_id_fkey;
ALTER TABLE follow_requests DROP CONSTRAINT follow_requests_target_id_fkey;
-- @group notifications users
ALTER TABLE notifications DROP CONSTRAINT notifications_actor_id_fkey;
-- @group notifications photos
ALTER TABLE notifications DROP CONSTRAINT notifications_photo_id_fkey;
-- @group payments users
ALTER TABLE accounts DROP CONSTRAINT accounts_user_id_fkey;
-- @group payments photos
ALTER TABLE transfers DROP CONSTRAINT transfers_photo_id_fkey;
