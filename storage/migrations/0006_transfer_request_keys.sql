-- @group payments
-- A transfer remembers the request that made it (its Idempotency-Key or the
-- page form's key, per requesting user), in the transfer's own serializable
-- transaction. The idempotency layer keeps answers, but it cannot know whether
-- a commit whose reply was lost happened; this index can: the same request
-- run again finds its transfer instead of moving the money twice.
ALTER TABLE transfers ADD COLUMN request_user bigint, ADD COLUMN request_key text;
ALTER TABLE transfers ADD CONSTRAINT transfers_request_pair
    CHECK ((request_user IS NULL) = (request_key IS NULL));
CREATE UNIQUE INDEX transfers_request_key ON transfers (request_user, request_key)
    WHERE request_key IS NOT NULL;
