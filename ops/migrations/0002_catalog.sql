-- The approved catalog, what became of each catalog input, the responsibility lists (R-12.1,
-- R-13.1) and deadline notices, queryable by operators and department officers.

CREATE TABLE catalog_entries (
    resource_code   text PRIMARY KEY,
    version         integer     NOT NULL,
    level           text        NOT NULL,
    county          text,
    provider        text        NOT NULL,
    name            text        NOT NULL,
    share_attribute text        NOT NULL,
    open_attribute  text        NOT NULL,
    base_database   text,
    system_code     text        NOT NULL,
    update_cycle    text        NOT NULL,
    content         jsonb       NOT NULL,
    approved_at     timestamptz NOT NULL,
    approved_by     text        NOT NULL,
    submission_id   text        NOT NULL
);
CREATE INDEX catalog_entries_provider ON catalog_entries (provider);
CREATE INDEX catalog_entries_county ON catalog_entries (county);

CREATE TABLE catalog_decisions (
    event_id      text PRIMARY KEY,
    subject_kind  text        NOT NULL,
    subject_id    text        NOT NULL,
    resource_code text,
    department    text        NOT NULL,
    status        text        NOT NULL,
    reasons       text[]      NOT NULL,
    rule_ids      text[]      NOT NULL,
    late          boolean     NOT NULL,
    due_on        text,
    decided_by    text,
    occurred_at   timestamptz NOT NULL
);
CREATE INDEX catalog_decisions_subject ON catalog_decisions (subject_id);
CREATE INDEX catalog_decisions_department ON catalog_decisions (department, occurred_at);

CREATE TABLE responsibility_lists (
    department    text NOT NULL,
    resource_code text NOT NULL,
    name          text NOT NULL,
    update_cycle  text NOT NULL,
    system_code   text NOT NULL,
    derived_at    timestamptz NOT NULL,
    PRIMARY KEY (department, resource_code)
);

CREATE TABLE deadline_notices (
    notice_id   text PRIMARY KEY,
    kind        text        NOT NULL,
    deadline_id text        NOT NULL,
    case_type   text        NOT NULL,
    case_id     text        NOT NULL,
    party       text        NOT NULL,
    due_on      date        NOT NULL,
    provisional boolean     NOT NULL,
    rule_id     text        NOT NULL,
    message     text        NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX deadline_notices_party ON deadline_notices (party, kind);
