-- Users and payments across shards (helper H1 of issue 10).

-- The directory (catalog only) holds every user made from now on; users made
-- before it existed are entered here, in the database that was their only one
-- (the catalog of a site that then shards). On a shard that is not the
-- catalog nothing reads it.
-- @group users
INSERT INTO user_directory (user_id, username, email, created_at)
    SELECT id, username, email, created_at FROM users
    ON CONFLICT DO NOTHING;

-- Wallets (catalog) name their user's username: the users live on their
-- shards, no longer beside the ledger, and a username never changes, so the
-- copy made with the wallet never goes stale.
-- @group payments
ALTER TABLE accounts ADD COLUMN username text;
-- @group payments users
UPDATE accounts a SET username = u.username FROM users u WHERE u.id = a.user_id;
-- @group payments
-- NOT VALID: a wallet of a site that sharded before this migration may name a
-- user of another database, whose name is not here to copy; new ones must.
ALTER TABLE accounts ADD CONSTRAINT accounts_user_has_username
    CHECK (kind <> 'user' OR username IS NOT NULL) NOT VALID;

-- A tip's notification (on the receiver's shard) is written by a job of the
-- catalog's; the transfer it tells of makes a repeat of that job a no-op.
-- @group notifications
ALTER TABLE notifications ADD COLUMN transfer_id bigint;
CREATE UNIQUE INDEX notifications_transfer_once ON notifications (transfer_id)
    WHERE transfer_id IS NOT NULL;
