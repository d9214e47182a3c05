"""Every topic of the bus, declared once: name, key, value schema, partitions, cleanup, retention, replication."""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000
FOREVER = -1
# production defaults: three copies of every partition, and a write (acks=all) counts once two of them hold it,
# so one broker may be lost, or restarted for an upgrade, without stopping the bus or losing what it accepted
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True)
class Replication:
    """How many copies of each partition a topic keeps, and how many must hold a write before it is acknowledged."""

    factor: int
    min_insync: int


def replication(brokers: int, factor: int = REPLICATION_FACTOR,
                min_insync: int = MIN_INSYNC_REPLICAS) -> Replication:
    """The declared replication scaled down to a cluster of `brokers`: 1 broker -> 1/1, 2 -> 2/1, 3 or more -> 3/2.

    One replica always stays out of min.insync.replicas, so a cluster keeps taking writes with one broker down."""
    factor = max(1, min(factor, brokers))
    return Replication(factor, max(1, min(min_insync, factor - 1)))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value_schema: str
    partitions: int
    cleanup_policy: str  # delete | compact
    retention_ms: int  # -1: kept forever
    doc: str
    recorded: bool = False  # the ledger writes what it carries to PostgreSQL
    replication_factor: int = REPLICATION_FACTOR
    min_insync_replicas: int = MIN_INSYNC_REPLICAS

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}

    def replication(self, brokers: int) -> Replication:
        """This topic's replication on a cluster of `brokers`."""
        return replication(brokers, self.replication_factor, self.min_insync_replicas)


DELIVERIES = TopicSpec(
    "govbus.deliveries", "subject_id", "govbus.exchange.DataDelivery", 8, "delete", 7 * DAY_MS,
    "Inbound from the bus's operators only (loads, replays): the publisher named in each record is taken as it "
    "stands. Departments publish on their own inbound topic, govbus.publish.<DEPT>.",
)
ACCEPTED = TopicSpec(
    "govbus.deliveries.accepted", "subject_id", "govbus.exchange.DataDelivery", 8, "delete", FOREVER,
    "Every publication the bus accepted, in order: the log the ledger and a replay are built from.", recorded=True,
)
SUBSCRIPTIONS = TopicSpec(
    "govbus.subscriptions", "resource_code|subscriber", "govbus.exchange.Subscription", 1, "compact",
    FOREVER, "Which department receives which resource; the latest event per pair counts.",
)
REJECTS = TopicSpec(
    "govbus.rejects", "source position", "govbus.ops.Reject", 3, "delete", 90 * DAY_MS,
    "Everything refused, with its bytes and the reason.", recorded=True,
)
CALENDAR = TopicSpec(
    "govbus.calendar", "year", "govbus.calendar.CalendarYear", 1, "compact", FOREVER,
    "Working-day calendars of years published after the built-in ones; the latest per year counts.",
)
CATALOG_INBOX = TopicSpec(
    "govbus.catalog.inbox", "department", "govbus.catalog.CatalogSubmission | CatalogReview | DemandList | "
    "SystemRegistration | CatalogChange", 1, "delete", FOREVER,
    "Catalog work in one ordered stream: submissions, reviews, demand lists, systems, changes.",
)
CATALOG = TopicSpec(
    "govbus.catalog", "resource_code", "govbus.catalog.CatalogEntry", 1, "compact", FOREVER,
    "The approved city catalog (county entries carry their county); the latest version per resource.", recorded=True,
)
CATALOG_DECISIONS = TopicSpec(
    "govbus.catalog.decisions", "subject id", "govbus.catalog.CatalogDecision", 1, "delete", FOREVER,
    "What became of each catalog input, with reasons and rule ids.", recorded=True,
)
RESPONSIBILITIES = TopicSpec(
    "govbus.catalog.responsibilities", "department", "govbus.catalog.ResponsibilityList", 1, "compact",
    FOREVER, "Each department's collection responsibility list, re-derived on every approval.", recorded=True,
)
CATALOG_STATE = TopicSpec(
    "govbus-catalog_state-changelog", "state key", "(JSON, internal)", 1, "compact", FOREVER,
    "The catalog agent's table (faust changelog): pending submissions, approved entries, systems.",
)
DEADLINE_COMMANDS = TopicSpec(
    "govbus.deadlines.commands", "deadline_id", "govbus.deadlines.DeadlineCommand", 1, "delete", FOREVER,
    "Start, answer or extend a statutory deadline.",
)
DEADLINES = TopicSpec(
    "govbus.deadlines", "deadline_id", "govbus.deadlines.DeadlineState", 1, "compact", FOREVER,
    "Every deadline's state; a restarted engine resumes from it.",
)
NOTICES = TopicSpec(
    "govbus.notices", "deadline_id", "govbus.deadlines.Notice", 1, "delete", FOREVER,
    "Deadline notices: started, reminder, breach, closed, extended, rescheduled.", recorded=True,
)
SHARING_INBOX = TopicSpec(
    "govbus.sharing.inbox", "department", "govbus.sharing.ShareRequest | ShareAnswer | GrantRevocation | "
    "Dispute | DisputeRuling", 1, "delete", FOREVER,
    "Share requests, answers, revocations, disputes and rulings, in one ordered stream.",
)
GRANTS = TopicSpec(
    "govbus.grants", "grant_id", "govbus.sharing.Grant", 1, "compact", FOREVER,
    "Directed authorizations; the latest state per grant (revoked ones stay, marked).", recorded=True,
)
SHARING_DECISIONS = TopicSpec(
    "govbus.sharing.decisions", "request id", "govbus.sharing.ShareDecision", 1, "delete", FOREVER,
    "What became of each sharing input, with reasons and rule ids.", recorded=True,
)
SHARING_STATE = TopicSpec(
    "govbus-sharing_state-changelog", "state key", "(JSON, internal)", 1, "compact", FOREVER,
    "The sharing agent's table (faust changelog): requests and grants.",
)
SUBJECT_SOURCES = TopicSpec(
    "govbus.deliveries.sources", "subject_id", "(JSON, internal)", 8, "compact", FOREVER,
    "Per subject, who published which data item: the delivery stream's duplicate-collection memory;"
    " partition p belongs to partition p of govbus.deliveries.",
)
ALERTS = TopicSpec(
    "govbus.alerts", "alert_id", "govbus.ops.Alert", 1, "delete", FOREVER,
    "One-source violations, duplicate collection, republication of received data.", recorded=True,
)
LEDGER_ANCHORS = TopicSpec(
    "govbus.ledger.anchors", "table", "govbus.ledger.Anchor", 1, "delete", FOREVER,
    "The ledger's chain heads (table, row number, hash), recorded as they grow: a rewritten table shows (R-39.1).",
)
CASES_INBOX = TopicSpec(
    "govbus.cases.inbox", "case id", "govbus.cases.PartyRegistration | PartyCredentials | CaseOpening | CaseStep | "
    "CorrectionSent", 1,
    "delete", FOREVER,
    "Citizens' and departments' cases in one ordered stream: registrations of parties, verifications, objections,"
    " open requests, and each step of them.",
)
CASES = TopicSpec(
    "govbus.cases", "case id", "govbus.cases.CaseEvent", 1, "delete", FOREVER,
    "What became of each case input: every step, who acted, the deadline it started, or why it was refused.",
    recorded=True,
)
CASE_FLAGS = TopicSpec(
    "govbus.cases.flags", "resource_code|subject_id", "govbus.cases.DatumFlags", 1, "compact", FOREVER,
    "Per datum, the open verification and objection cases its feed deliveries are flagged with (R-19.2, R-41.1)"
    " and the departments owed a correction; the latest per datum counts.",
)
PARTIES = TopicSpec(
    "govbus.parties", "party id", "govbus.cases.Party", 1, "compact", FOREVER,
    "Registered parties that are not departments: residents, companies, research bodies.",
)
CASES_STATE = TopicSpec(
    "govbus-cases_state-changelog", "state key", "(JSON, internal)", 1, "compact", FOREVER,
    "The case agent's table (faust changelog): cases, parties and the flags of each datum.",
)
OPEN_FEED = TopicSpec(
    "govbus.open.feed", "resource_code", "govbus.open.OpenDelivery", 4, "delete", 30 * DAY_MS,
    "Unconditionally open data, desensitized, with its source and retrieval date: any authenticated party reads it"
    " (R-29.1, R-32.2, R-32.3).",
)
OPEN_CATALOG = TopicSpec(
    "govbus.open.catalog", "resource_code", "govbus.catalog.CatalogEntry", 1, "compact", FOREVER,
    "The open catalog: approved entries whose open attribute is unconditional or conditional, the latest version per"
    " resource; a tombstone when an entry stops being open (R-30.1).",
)
OPEN_GRANTS = TopicSpec(
    "govbus.open.grants", "grant_id", "govbus.open.OpenGrant", 1, "compact", FOREVER,
    "Approved conditional open requests: which party receives which items of which resource (R-32.1).",
    recorded=True,
)
FEED_PARTITIONS = 4
FEED_RETENTION_MS = 30 * DAY_MS
FEED_PREFIX = "govbus.feed."
PUBLISH_PREFIX = "govbus.publish."
OPEN_PARTY_PREFIX = "govbus.open.party."

FIXED: tuple[TopicSpec, ...] = (
    DELIVERIES, ACCEPTED, SUBSCRIPTIONS, REJECTS, CALENDAR, CATALOG_INBOX, CATALOG, CATALOG_DECISIONS,
    RESPONSIBILITIES, CATALOG_STATE, DEADLINE_COMMANDS, DEADLINES, NOTICES, SHARING_INBOX, GRANTS,
    SHARING_DECISIONS, SHARING_STATE, SUBJECT_SOURCES, ALERTS, LEDGER_ANCHORS, CASES_INBOX, CASES, CASE_FLAGS, PARTIES,
    CASES_STATE, OPEN_FEED, OPEN_CATALOG, OPEN_GRANTS,
)


def feed(department: str) -> TopicSpec:
    return TopicSpec(
        FEED_PREFIX + department, "subject_id", "govbus.exchange.FeedDelivery", FEED_PARTITIONS,
        "delete", FEED_RETENTION_MS, f"What department {department} is authorized to receive.", recorded=True,
    )


def publish(department: str) -> TopicSpec:
    # partition p of every inbound topic and of govbus.deliveries.sources go to the same worker: same count
    return TopicSpec(
        PUBLISH_PREFIX + department, "subject_id", "govbus.exchange.DataDelivery", DELIVERIES.partitions, "delete",
        DELIVERIES.retention_ms, f"Inbound: what department {department}, and only it, publishes (R-39.1).",
    )


def all_topics(departments) -> list[TopicSpec]:
    codes = sorted(departments)
    return [*FIXED, *(feed(code) for code in codes), *(publish(code) for code in codes)]


def name_of(spec: TopicSpec, prefix: str = "") -> str:
    return prefix + spec.name


def open_party_feed(party_id: str) -> TopicSpec:
    """The conditionally open data one approved party receives; made when the party is issued its credentials."""
    return TopicSpec(
        OPEN_PARTY_PREFIX + party_id, "resource_code", "govbus.open.OpenDelivery", 1, "delete", FEED_RETENTION_MS,
        f"Conditionally open data approved for party {party_id}, desensitized (R-29.1, R-32.1).",
    )


def open_party_name(party_id: str, prefix: str = "") -> str:
    return prefix + OPEN_PARTY_PREFIX + party_id


def feed_name(department: str, prefix: str = "") -> str:
    return prefix + FEED_PREFIX + department


def publish_name(department: str, prefix: str = "") -> str:
    return prefix + PUBLISH_PREFIX + department


def publisher_of(topic: str, prefix: str = "") -> str | None:
    """The department whose inbound topic this is (None for any other topic)."""
    name = topic[len(prefix):] if prefix and topic.startswith(prefix) else topic
    return name[len(PUBLISH_PREFIX):] if name.startswith(PUBLISH_PREFIX) else None


def logical_name(topic: str, prefix: str = "") -> str:
    """A topic's name as metrics label it: without the deployment prefix, every feed as `govbus.feed`, every
    department's inbound topic as `govbus.publish`."""
    name = topic[len(prefix):] if prefix and topic.startswith(prefix) else topic
    for per_department in (FEED_PREFIX, PUBLISH_PREFIX, OPEN_PARTY_PREFIX):
        if name.startswith(per_department):
            return per_department.rstrip(".")
    return name
