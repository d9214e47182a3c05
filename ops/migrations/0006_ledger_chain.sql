-- The ledger's record tables become append-only and hash-chained (R-39.1, R-40.1, R-28.1): each row carries its
-- place in its table's chain and a hash committing to the row before it (consumers/chain.py); the database
-- refuses UPDATE, DELETE and TRUNCATE on them, whoever asks. Feed deliveries name the items delivered (R-8.1).

ALTER TABLE ledger_feed_deliveries ADD COLUMN items text[];

ALTER TABLE ledger_deliveries ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea;
ALTER TABLE ledger_feed_deliveries ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea;
ALTER TABLE ledger_rejects ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea;

-- rows written before the chain are numbered in the order they were recorded; `govbus db migrate` seals them
-- (computes their hashes) right after this file, before anything is appended
UPDATE ledger_deliveries t SET chain_seq = n.seq FROM (
    SELECT event_id, row_number() OVER (ORDER BY recorded_at, event_id) AS seq FROM ledger_deliveries) n
WHERE t.event_id = n.event_id;
UPDATE ledger_feed_deliveries t SET chain_seq = n.seq FROM (
    SELECT event_id, subscriber, row_number() OVER (ORDER BY recorded_at, event_id, subscriber) AS seq
    FROM ledger_feed_deliveries) n
WHERE t.event_id = n.event_id AND t.subscriber = n.subscriber;
UPDATE ledger_rejects t SET chain_seq = n.seq FROM (
    SELECT reject_id, row_number() OVER (ORDER BY recorded_at, reject_id) AS seq FROM ledger_rejects) n
WHERE t.reject_id = n.reject_id;

ALTER TABLE ledger_deliveries ALTER COLUMN chain_seq SET NOT NULL,
    ADD CONSTRAINT ledger_deliveries_chain UNIQUE (chain_seq);
ALTER TABLE ledger_feed_deliveries ALTER COLUMN chain_seq SET NOT NULL,
    ADD CONSTRAINT ledger_feed_deliveries_chain UNIQUE (chain_seq);
ALTER TABLE ledger_rejects ALTER COLUMN chain_seq SET NOT NULL,
    ADD CONSTRAINT ledger_rejects_chain UNIQUE (chain_seq);

-- who received a subject's or a resource's data (govbus audit who-received)
CREATE INDEX ledger_feed_deliveries_subject ON ledger_feed_deliveries (subject_id, delivered_at);
CREATE INDEX ledger_feed_deliveries_resource ON ledger_feed_deliveries (resource_code, delivered_at);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the one change allowed: sealing, once, a row recorded before the chain began
    IF TG_OP = 'UPDATE' THEN
        IF OLD.row_hash IS NULL AND NEW.row_hash IS NOT NULL
           AND to_jsonb(NEW) - 'row_hash' = to_jsonb(OLD) - 'row_hash' THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % on % refused (R-39.1)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a ledger row, once written, is never changed or removed';
END $$;

CREATE TRIGGER ledger_deliveries_append_only BEFORE UPDATE OR DELETE ON ledger_deliveries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_feed_deliveries_append_only BEFORE UPDATE OR DELETE ON ledger_feed_deliveries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_rejects_append_only BEFORE UPDATE OR DELETE ON ledger_rejects
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_deliveries_no_truncate BEFORE TRUNCATE ON ledger_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_feed_deliveries_no_truncate BEFORE TRUNCATE ON ledger_feed_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_rejects_no_truncate BEFORE TRUNCATE ON ledger_rejects
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
