-- Records a ledger table refused (a value the database cannot hold, a constraint): set aside with
-- their source position, bytes and error, so the sink goes on and `govbus ledger replay` can retry them.

CREATE TABLE ledger_quarantine (
    quarantine_id    bigserial PRIMARY KEY,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    record_type      text,
    target_table     text,
    source_timestamp timestamptz NOT NULL,
    raw              bytea       NOT NULL,
    error_class      text        NOT NULL,
    error            text        NOT NULL,
    reason           text        NOT NULL,
    quarantined_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replay_error     text,
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX ledger_quarantine_open ON ledger_quarantine (quarantined_at) WHERE replayed_at IS NULL;
