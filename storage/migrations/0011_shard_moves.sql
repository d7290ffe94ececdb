-- Moving a logical shard between databases (storage/shard_move.py).

-- Logical shards being moved away from this database: while listed, a write
-- to one of their rows fails at once (SQLSTATE PS001, answered 503 with
-- Retry-After) instead of landing where the shard no longer lives.
CREATE TABLE shard_fences (
    logical integer PRIMARY KEY CHECK (logical BETWEEN 0 AND 8191)
);

-- The fence, as a row trigger a move puts on this database's tables for its
-- duration only (no cost otherwise). Its arguments name the columns whose IDs
-- say which logical shard a row belongs with.
CREATE FUNCTION picshare_fence() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_data jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    owner_column text;
    owner_shard integer;
BEGIN
    -- The move's own clean-up of the rows it moved away.
    IF current_setting('picshare.moving', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    FOREACH owner_column IN ARRAY TG_ARGV LOOP
        owner_shard := (((row_data ->> owner_column)::bigint >> 10) & 8191)::integer;
        IF EXISTS (SELECT 1 FROM shard_fences f WHERE f.logical = owner_shard) THEN
            RAISE EXCEPTION 'logical shard % is moving to another database', owner_shard
                USING ERRCODE = 'PS001', HINT = 'retry in a moment';
        END IF;
    END LOOP;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;

-- @group users
-- Moves under way (catalog only): where each stands, so a move interrupted at
-- any point finishes when run again.
CREATE TABLE shard_moves (
    logical integer PRIMARY KEY CHECK (logical BETWEEN 0 AND 8191),
    source integer NOT NULL CHECK (source >= 0),
    target integer NOT NULL CHECK (target >= 0),
    phase text NOT NULL CHECK (phase IN ('copying', 'switched')),
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
