-- Directed authorizations, what became of share requests, and alerts for the authority
-- (R-26.2, R-25.1, R-17.1, R-17.3, R-45.1, R-27.1, R-48.1).

CREATE TABLE grants (
    grant_id       text PRIMARY KEY,
    grantee        text        NOT NULL,
    provider       text        NOT NULL,
    resource_code  text        NOT NULL,
    items          text[]      NOT NULL,
    subjects       text[]      NOT NULL,
    purpose        text        NOT NULL,
    valid_from     date        NOT NULL,
    valid_until    date        NOT NULL,
    revoked        boolean     NOT NULL,
    revoked_reason text,
    granted_by     text        NOT NULL,
    request_id     text        NOT NULL,
    granted_at     timestamptz NOT NULL
);
CREATE INDEX grants_grantee ON grants (grantee);

CREATE TABLE share_decisions (
    event_id      text PRIMARY KEY,
    request_id    text        NOT NULL,
    department    text        NOT NULL,
    resource_code text,
    status        text        NOT NULL,
    reasons       text[]      NOT NULL,
    rule_ids      text[]      NOT NULL,
    grant_id      text,
    due_on        text,
    occurred_at   timestamptz NOT NULL
);
CREATE INDEX share_decisions_request ON share_decisions (request_id);

-- one row per finding, one per subject it concerns: the evaluation counts subjects per
-- department and system (R-45.1)
CREATE TABLE alerts (
    alert_id          text PRIMARY KEY,
    kind              text        NOT NULL,
    rule_ids          text[]      NOT NULL,
    department        text        NOT NULL,
    source_department text,
    system_code       text,
    resource_code     text        NOT NULL,
    items             text[]      NOT NULL,
    message           text        NOT NULL,
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL
);
CREATE INDEX alerts_department ON alerts (department, kind);

CREATE TABLE alert_subjects (
    alert_id   text        NOT NULL,
    subject_id text        NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (alert_id, subject_id)
);

CREATE VIEW alert_summary AS
SELECT a.*, (SELECT count(*) FROM alert_subjects s WHERE s.alert_id = a.alert_id) AS subjects_count
FROM alerts a;
