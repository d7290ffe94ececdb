-- The social layer: likes, comments, follows, follow requests, tags, notifications.

-- @group likes
CREATE TABLE likes (
    photo_id bigint NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, user_id)
);
CREATE INDEX likes_user ON likes (user_id, photo_id);
-- @group likes photos
ALTER TABLE likes ADD CONSTRAINT likes_photo_id_fkey
    FOREIGN KEY (photo_id) REFERENCES photos (id) ON DELETE CASCADE;
-- @group likes users
ALTER TABLE likes ADD CONSTRAINT likes_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

-- @group comments
CREATE TABLE comments (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    photo_id bigint NOT NULL,
    user_id bigint NOT NULL,
    -- Denormalized where read: a comment list needs no join to users. Kept
    -- right by the profile edit, in its transaction.
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    text text NOT NULL CHECK (length(text) BETWEEN 1 AND 2200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_photo ON comments (photo_id, id DESC);
CREATE INDEX comments_user ON comments (user_id);
-- @group comments photos
ALTER TABLE comments ADD CONSTRAINT comments_photo_id_fkey
    FOREIGN KEY (photo_id) REFERENCES photos (id) ON DELETE CASCADE;
-- @group comments users
ALTER TABLE comments ADD CONSTRAINT comments_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

-- @group users
-- Approved follows only; pending ones live in follow_requests.
CREATE TABLE follows (
    id bigint NOT NULL DEFAULT picshare_next_id() UNIQUE,
    follower_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, id DESC);
CREATE INDEX follows_follower ON follows (follower_id, id DESC);

CREATE TABLE follow_requests (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    requester_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (requester_id, target_id),
    CHECK (requester_id <> target_id)
);
CREATE INDEX follow_requests_target ON follow_requests (target_id, id DESC);

-- @group photos
-- Tags with their photo counts, for prefix search and tag pages.
CREATE TABLE tags (
    tag text PRIMARY KEY,
    photo_count integer NOT NULL DEFAULT 0 CHECK (photo_count >= 0)
);
-- Prefix search (LIKE 'abc%') whatever the database's collation.
CREATE INDEX tags_prefix ON tags (tag text_pattern_ops);
INSERT INTO tags (tag, photo_count)
    SELECT t, count(*) FROM photos, unnest(tags) AS t GROUP BY t;
-- @group users
CREATE INDEX users_username_prefix ON users (username text_pattern_ops);

-- @group notifications
CREATE TABLE notifications (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    user_id bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('like', 'comment', 'follow', 'follow_request', 'photo')),
    actor_id bigint NOT NULL,
    actor_username text NOT NULL,
    photo_id bigint,
    comment_id bigint,
    text text NOT NULL DEFAULT '',
    read_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (user_id <> actor_id)
);
CREATE INDEX notifications_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
-- Like, unlike, like again: one notification, not three.
CREATE UNIQUE INDEX notifications_like_once
    ON notifications (user_id, actor_id, photo_id) WHERE kind = 'like';
CREATE UNIQUE INDEX notifications_follow_once
    ON notifications (user_id, actor_id) WHERE kind IN ('follow', 'follow_request');
-- @group notifications users
ALTER TABLE notifications ADD CONSTRAINT notifications_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE notifications ADD CONSTRAINT notifications_actor_id_fkey
    FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE CASCADE;
-- @group notifications photos
ALTER TABLE notifications ADD CONSTRAINT notifications_photo_id_fkey
    FOREIGN KEY (photo_id) REFERENCES photos (id) ON DELETE CASCADE;
-- @group notifications comments
ALTER TABLE notifications ADD CONSTRAINT notifications_comment_id_fkey
    FOREIGN KEY (comment_id) REFERENCES comments (id) ON DELETE CASCADE;

-- @group photos
-- Profiles and the home feed read only ready photos of one owner, newest first.
CREATE INDEX photos_owner_ready ON photos (owner_id, id DESC) WHERE status = 'ready';
