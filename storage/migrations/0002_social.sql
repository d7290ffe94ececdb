-- The social layer: likes, comments, follows, follow requests, tags, notifications.

CREATE TABLE likes (
    photo_id bigint NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, user_id)
);
CREATE INDEX likes_user ON likes (user_id, photo_id);

CREATE TABLE comments (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    photo_id bigint NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Denormalized where read: a comment list needs no join to users. Kept
    -- right by the profile edit, in its transaction.
    username text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    text text NOT NULL CHECK (length(text) BETWEEN 1 AND 2200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_photo ON comments (photo_id, id DESC);
CREATE INDEX comments_user ON comments (user_id);

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

-- Tags with their photo counts, for prefix search and tag pages.
CREATE TABLE tags (
    tag text PRIMARY KEY,
    photo_count integer NOT NULL DEFAULT 0 CHECK (photo_count >= 0)
);
-- Prefix search (LIKE 'abc%') whatever the database's collation.
CREATE INDEX tags_prefix ON tags (tag text_pattern_ops);
CREATE INDEX users_username_prefix ON users (username text_pattern_ops);
INSERT INTO tags (tag, photo_count)
    SELECT t, count(*) FROM photos, unnest(tags) AS t GROUP BY t;

CREATE TABLE notifications (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('like', 'comment', 'follow', 'follow_request', 'photo')),
    actor_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_username text NOT NULL,
    photo_id bigint REFERENCES photos (id) ON DELETE CASCADE,
    comment_id bigint REFERENCES comments (id) ON DELETE CASCADE,
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

-- Profiles and the home feed read only ready photos of one owner, newest first.
CREATE INDEX photos_owner_ready ON photos (owner_id, id DESC) WHERE status = 'ready';
