-- Backups and restores are part of the record (R-42.1, R-44.1): each snapshot `govbus backup` takes, with its
-- manifest's checksum and the ledger's chain heads in it, and each `govbus restore`; neither is ever changed.

CREATE TABLE ledger_backups (
    backup_id        text PRIMARY KEY,
    taken_at         timestamptz NOT NULL,
    location         text NOT NULL,
    manifest_sha256  text NOT NULL,
    chain_heads      jsonb NOT NULL,   -- {table: [chain_seq, row_hash hex]} as in the snapshot
    recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_restores (
    restore_id       bigserial PRIMARY KEY,
    backup_id        text NOT NULL,
    taken_at         timestamptz NOT NULL,   -- when the snapshot restored was taken
    restored_at      timestamptz NOT NULL DEFAULT now(),
    chain_heads      jsonb NOT NULL,         -- the heads the ledger was restored to; rows after them were replayed
    source           text NOT NULL
);

CREATE FUNCTION ledger_record_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused (R-39.1)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a record of a backup or a restore, once written, is never changed or removed';
END $$;

CREATE TRIGGER ledger_backups_append_only BEFORE UPDATE OR DELETE ON ledger_backups
    FOR EACH ROW EXECUTE FUNCTION ledger_record_only();
CREATE TRIGGER ledger_restores_append_only BEFORE UPDATE OR DELETE ON ledger_restores
    FOR EACH ROW EXECUTE FUNCTION ledger_record_only();
CREATE TRIGGER ledger_backups_no_truncate BEFORE TRUNCATE ON ledger_backups
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_record_only();
CREATE TRIGGER ledger_restores_no_truncate BEFORE TRUNCATE ON ledger_restores
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_record_only();
