-- Users' webhook endpoints (picshare/webhooks.py, README "Webhooks"): they
-- live with their user, on the user's shard, as the user's other rows do.
-- Their ids carry the user's logical shard (storage/webhooks_repo.py), so an
-- endpoint's id names its database.

-- @group users
CREATE TABLE webhook_endpoints (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url text NOT NULL,
    -- The domain event types it is sent (picshare/domain_events.py).
    events text[] NOT NULL,
    -- The signing secret itself (whsec_...), not a hash of it: the server
    -- must compute an HMAC with it on every delivery, which a hash cannot do.
    -- It is shown to its user once, when made, and never again.
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set when the receiver answered 410 Gone: nothing more is sent to it.
    disabled_at timestamptz,
    disabled_reason text
);
CREATE INDEX webhook_endpoints_of_user ON webhook_endpoints (user_id, id);

-- One message per (event, endpoint): its state across the attempts that
-- send it, each attempt a durable job (picshare/jobs.py) due at its time.
-- `attempts` counts those made, so a job that runs twice (its lease lapsed)
-- records its attempt once.
CREATE TABLE webhook_messages (
    endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id bigint NOT NULL,
    event_type text NOT NULL,
    -- The body exactly as every attempt sends (and signs) it.
    body text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, event_id)
);

-- The delivery log: every attempt, trimmed to `webhooks.log_keep` per endpoint.
CREATE TABLE webhook_deliveries (
    id bigint PRIMARY KEY,
    endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id bigint NOT NULL,
    event_type text NOT NULL,
    attempt integer NOT NULL,
    -- The receiver's HTTP status; NULL when it never answered.
    status integer,
    duration_ms integer NOT NULL,
    error text NOT NULL DEFAULT '',
    -- When the next attempt is due (NULL: none follows).
    next_attempt_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_of_endpoint ON webhook_deliveries (endpoint_id, id);
