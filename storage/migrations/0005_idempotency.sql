-- @group users
-- Idempotency-Key (handlers/idempotency.py): the first answer to a user's
-- unsafe request under a key, replayed for retries of it. On the primary
-- only; a row is claimed atomically (INSERT ... ON CONFLICT) before the
-- handler runs, so two processes cannot both run the same request.
CREATE TABLE idempotency_keys (
    user_id bigint NOT NULL,
    key text NOT NULL,
    -- method, path, query and the body's SHA-256 (hex): a reused key with
    -- another payload is refused (422)
    fingerprint text NOT NULL,
    state text NOT NULL CHECK (state IN ('in_flight', 'done')),
    -- who holds an in_flight claim, so a claim taken over after its lease
    -- cannot be completed or released by the slow first holder
    token bigint NOT NULL,
    lease_until timestamptz NOT NULL,
    status smallint,
    content_type text,
    location text,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
-- The sweep deletes by age.
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
