-- Domain events (picshare/outbox.py): written in the transaction of the
-- change they report, relayed after it commits (picshare/relay_*.py).

-- @group *
-- Every database has its own outbox, as it has its own jobs: an event is
-- written beside the change it reports, in that change's transaction.
CREATE TABLE outbox (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set once the relay handed the event over (the broker confirmed it, or
    -- the in-process relay queued its consumers' jobs).
    sent_at timestamptz
);
-- The relay's scan: only the unsent, oldest first.
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- What each consumer has done, by event id, written in the transaction of
-- its work: a redelivered event finds its row and changes nothing.
CREATE TABLE processed_events (
    consumer text NOT NULL,
    event_id bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The `counters` consumer: how many events of each type happened.
CREATE TABLE event_counts (
    type text PRIMARY KEY,
    count bigint NOT NULL DEFAULT 0
);
