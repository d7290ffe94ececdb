-- The payments ledger (README: "Payments ledger"): double entry. Every
-- movement of money is one `transfers` row and two `ledger_entries` rows that
-- sum to zero; a user's wallet balance is kept in `accounts`, changed in the
-- transaction that writes the entries, and can never go below zero.

-- @group payments
-- A user's wallet, or the stand-in payment provider (the outside world that
-- top-ups come from). Only wallets keep a balance: the provider's is the sum
-- of its entries (negative: what users paid in), so concurrent top-ups do not
-- all queue on one row.
CREATE TABLE accounts (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    kind text NOT NULL CHECK (kind IN ('user', 'provider')),
    user_id bigint UNIQUE,
    balance_cents bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_user_has_owner CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CONSTRAINT accounts_user_has_balance CHECK ((kind = 'user') = (balance_cents IS NOT NULL)),
    CONSTRAINT accounts_balance_not_negative CHECK (balance_cents >= 0)
);
CREATE UNIQUE INDEX accounts_one_provider ON accounts (kind) WHERE kind = 'provider';
INSERT INTO accounts (kind) VALUES ('provider');

CREATE TABLE transfers (
    id bigint PRIMARY KEY DEFAULT picshare_next_id(),
    kind text NOT NULL CHECK (kind IN ('topup', 'tip')),
    from_account bigint NOT NULL REFERENCES accounts (id),
    to_account bigint NOT NULL REFERENCES accounts (id),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    -- The photo a tip was given for; the money stays if the photo goes.
    photo_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account)
);
-- A wallet's recent movements, either side, newest first.
CREATE INDEX transfers_from ON transfers (from_account, id DESC);
CREATE INDEX transfers_to ON transfers (to_account, id DESC);
CREATE INDEX transfers_photo ON transfers (photo_id) WHERE photo_id IS NOT NULL;

CREATE TABLE ledger_entries (
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    account_id bigint NOT NULL REFERENCES accounts (id),
    amount_cents bigint NOT NULL CHECK (amount_cents <> 0),
    PRIMARY KEY (transfer_id, account_id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

-- Checked by the database, not only by the code that writes: at commit, each
-- transfer has exactly two entries summing to zero.
CREATE FUNCTION ledger_transfer_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
    n integer;
BEGIN
    SELECT coalesce(sum(amount_cents), 0), count(*) INTO total, n
        FROM ledger_entries WHERE transfer_id = NEW.transfer_id;
    IF total <> 0 OR n <> 2 THEN
        RAISE EXCEPTION 'transfer % is unbalanced: % entries summing to %',
            NEW.transfer_id, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transfer_balanced();

-- The ledger is append-only: a mistake is corrected by a new transfer. Only
-- a tip's photo_id may change (to NULL, when its photo is deleted).
CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
    FOR EACH ROW
    WHEN ((OLD.id, OLD.kind, OLD.from_account, OLD.to_account, OLD.amount_cents, OLD.created_at)
          IS DISTINCT FROM
          (NEW.id, NEW.kind, NEW.from_account, NEW.to_account, NEW.amount_cents, NEW.created_at))
    EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
-- @group payments users
ALTER TABLE accounts ADD CONSTRAINT accounts_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);
-- @group payments photos
ALTER TABLE transfers ADD CONSTRAINT transfers_photo_id_fkey
    FOREIGN KEY (photo_id) REFERENCES photos (id) ON DELETE SET NULL;

-- @group notifications
-- Tips notify their receiver.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('like', 'comment', 'follow', 'follow_request', 'photo', 'tip'));
