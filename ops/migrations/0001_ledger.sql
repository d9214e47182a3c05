-- The ledger: what flowed through the bus, queryable by operators (R-8.1).
-- Every table is idempotent on its event id, so a replayed batch changes nothing.

CREATE TABLE ledger_deliveries (
    event_id      text PRIMARY KEY,
    publisher     text        NOT NULL,
    resource_code text        NOT NULL,
    subject_id    text        NOT NULL,
    system_code   text,
    items         jsonb       NOT NULL,
    occurred_at   timestamptz NOT NULL,
    accepted_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_deliveries_resource ON ledger_deliveries (resource_code, occurred_at);
CREATE INDEX ledger_deliveries_subject ON ledger_deliveries (subject_id);

-- one row for each delivery to each receiving department
CREATE TABLE ledger_feed_deliveries (
    event_id      text        NOT NULL,
    subscriber    text        NOT NULL,
    publisher     text        NOT NULL,
    resource_code text        NOT NULL,
    subject_id    text        NOT NULL,
    grant_id      text        NOT NULL,
    purpose       text,
    digest        text        NOT NULL,
    delivered_at  timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, subscriber)
);
CREATE INDEX ledger_feed_deliveries_subscriber ON ledger_feed_deliveries (subscriber, delivered_at);

CREATE TABLE ledger_rejects (
    reject_id        text PRIMARY KEY,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    code             text        NOT NULL,
    reason           text        NOT NULL,
    publisher        text,
    original_event_id text,
    rule_ids         text[]      NOT NULL DEFAULT '{}',
    raw              bytea       NOT NULL,
    rejected_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_rejects_code ON ledger_rejects (code, rejected_at);
