-- Citizens' and departments' cases (R-19.1, R-31.1, R-32.1, R-41.1): every step of every case as the case agent
-- decided it, refusals included, never changed; the yearly evaluation counts verification outcomes from it (R-20.1).

CREATE TABLE case_events (
    event_id       text PRIMARY KEY,
    case_id        text        NOT NULL,
    case_type      text,
    step           text        NOT NULL,
    status         text        NOT NULL,
    actor          text        NOT NULL,
    person         text,
    requester      text,
    resource_code  text,
    subject_id     text,
    items          text[]      NOT NULL,
    message        text        NOT NULL,
    rule_ids       text[]      NOT NULL,
    deadline_id    text,
    party          text,
    due_on         text,
    recipients     text[]      NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_events_case ON case_events (case_id, occurred_at);
CREATE INDEX case_events_subject ON case_events (subject_id) WHERE subject_id IS NOT NULL;

CREATE TRIGGER case_events_append_only BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION ledger_record_only();

-- approved conditional open requests (R-32.1): which party receives which items of which resource
CREATE TABLE open_grants (
    grant_id       text PRIMARY KEY,
    party          text        NOT NULL,
    resource_code  text        NOT NULL,
    items          text[]      NOT NULL,
    purpose        text        NOT NULL,
    use            text        NOT NULL,
    award          text,
    granted_by     text        NOT NULL,
    granted_at     timestamptz NOT NULL,
    case_id        text        NOT NULL,
    revoked        boolean     NOT NULL
);
