"""Who may do what on the broker (R-39.1): one principal per department and per bus process, their ACLs derived
from the department registry and the topic registry, and `apply_acls` keeping the broker in step with them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from topics import registry
from topics.departments import CODE

log = logging.getLogger("govbus.acls")

# Kafka's wire codes (org.apache.kafka.common.resource / acl)
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = 2, 3, 4, 5
ANY, LITERAL, PREFIXED = 1, 3, 4
READ, WRITE, DESCRIBE = 3, 4, 8
ALLOW = 3
RESOURCE_NAMES = {TOPIC: "topic", GROUP: "group", CLUSTER: "cluster", TRANSACTIONAL_ID: "transactional-id"}
OPERATION_NAMES = {READ: "read", WRITE: "write", DESCRIBE: "describe"}

ADMIN = "govbus-admin"  # the local stack's super user; a production cluster names its own
PROCESSES = ("worker", "ledger", "deadlines")
# what every department may read besides its own feed: the city catalog and what became of catalog and sharing
# work, the responsibility lists, the working-day calendar, and the statutory deadlines with their notices (whose
# answer is due from whom by when: no personal data), so that a department sees its own reminders and refusals
PUBLIC = (registry.CATALOG, registry.CATALOG_DECISIONS, registry.RESPONSIBILITIES, registry.CALENDAR,
          registry.SHARING_DECISIONS, registry.OPEN_CATALOG, registry.DEADLINES, registry.NOTICES)
# what every authenticated party may read besides the open data: the open catalog and the working-day calendar
PARTY_READS: tuple[registry.TopicSpec, ...] = (registry.OPEN_CATALOG, registry.CALENDAR)
# the city authority also publishes the calendar and follows alerts, grants and cases
AUTHORITY_WRITES = (registry.CALENDAR,)
AUTHORITY_READS = (registry.ALERTS, registry.GRANTS, registry.CASES)


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry: `principal` may `operation` on the resource (a literal name or a name prefix), any host."""

    principal: str  # User:<name>
    resource_type: int
    resource_name: str
    pattern_type: int
    operation: int

    def __str__(self) -> str:
        pattern = "prefix " if self.pattern_type == PREFIXED else ""
        return (f"{self.principal} {OPERATION_NAMES.get(self.operation, self.operation)} "
                f"{RESOURCE_NAMES.get(self.resource_type, self.resource_type)} {pattern}{self.resource_name}")


def department_principal(code: str, prefix: str = "") -> str:
    return f"{prefix}{code}"


def process_principal(process: str, prefix: str = "") -> str:
    return f"{prefix}govbus-{process}"


def party_principal(party_id: str, prefix: str = "") -> str:
    """A registered party (a resident, a company, a research body) on the broker: `party-<identifier>`."""
    return f"{prefix}party-{party_id}"


def party_acls(party_id: str, prefix: str = "") -> list[Acl]:
    """A party reads the unconditionally open data (R-32.3) and its own conditionally open feed, commits with groups
    under its own prefix, and writes nothing: its cases go through the portal, on its behalf."""
    user = f"User:{party_principal(party_id, prefix)}"
    return [Acl(user, TOPIC, registry.name_of(registry.OPEN_FEED, prefix), LITERAL, READ),
            Acl(user, TOPIC, registry.open_party_name(party_id, prefix), LITERAL, READ),
            *(Acl(user, TOPIC, registry.name_of(t, prefix), LITERAL, READ) for t in PARTY_READS),
            Acl(user, GROUP, f"{party_principal(party_id, prefix)}.", PREFIXED, READ)]


def department_group_prefix(code: str, prefix: str = "") -> str:
    """Consumer groups a department may commit with start so: `<DEPT>.`, e.g. `NJ-MZ.case-system`."""
    return f"{prefix}{code}."


def managed(name: str, prefix: str = "") -> bool:
    """True for a principal govbus creates and keeps in this deployment (a department or a bus process)."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix):]
    return bool(CODE.match(rest)) or rest in {f"govbus-{p}" for p in PROCESSES}


def department_acls(code: str, prefix: str = "", *, authority: bool = False) -> list[Acl]:
    """A department reads its own feed and the public topics, writes its own inbound topic only (its data, and the
    commands of its officers, which the bus passes on to the inboxes: streams.rules.commands), commits only with
    groups under its own prefix, and alters nothing."""
    user = f"User:{department_principal(code, prefix)}"
    acls = [Acl(user, TOPIC, registry.feed_name(code, prefix), LITERAL, READ),
            Acl(user, TOPIC, registry.publish_name(code, prefix), LITERAL, WRITE),
            Acl(user, GROUP, department_group_prefix(code, prefix), PREFIXED, READ)]
    acls += [Acl(user, TOPIC, registry.name_of(t, prefix), LITERAL, READ) for t in PUBLIC]
    if authority:
        acls += [Acl(user, TOPIC, registry.name_of(t, prefix), LITERAL, WRITE) for t in AUTHORITY_WRITES]
        acls += [Acl(user, TOPIC, registry.name_of(t, prefix), LITERAL, READ) for t in AUTHORITY_READS]
    return acls


def process_acls(process: str, prefix: str = "") -> list[Acl]:
    """Each bus process: only the topics, groups and transactional ids it uses."""
    user = f"User:{process_principal(process, prefix)}"
    deployment = prefix + "govbus"  # every topic of the deployment starts so, faust's changelogs too

    def topics(op: int, *specs: registry.TopicSpec) -> list[Acl]:
        return [Acl(user, TOPIC, registry.name_of(s, prefix), LITERAL, op) for s in specs]

    if process == "worker":  # the agents and the delivery stream read and write the deployment's topics
        return [Acl(user, TOPIC, deployment, PREFIXED, READ), Acl(user, TOPIC, deployment, PREFIXED, WRITE),
                Acl(user, GROUP, deployment, LITERAL, READ),
                Acl(user, GROUP, f"{deployment}-deliveries", LITERAL, READ)]
    if process == "ledger":
        recorded = [s for s in registry.FIXED if s.recorded]
        return [*topics(READ, *recorded), Acl(user, TOPIC, prefix + registry.FEED_PREFIX, PREFIXED, READ),
                *topics(WRITE, registry.REJECTS, registry.LEDGER_ANCHORS),
                Acl(user, GROUP, f"{deployment}-ledger", LITERAL, READ)]
    if process == "deadlines":
        return [*topics(READ, registry.DEADLINE_COMMANDS, registry.CALENDAR, registry.DEADLINES),
                *topics(WRITE, registry.DEADLINES, registry.NOTICES, registry.REJECTS),
                Acl(user, GROUP, f"{deployment}-deadlines", LITERAL, READ),
                Acl(user, TRANSACTIONAL_ID, f"{deployment}-deadlines", LITERAL, WRITE)]
    raise ValueError(f"no bus process {process!r}; the processes are {', '.join(PROCESSES)}")


def wanted_acls(departments: Mapping[str, object], prefix: str = "") -> set[Acl]:
    """Every ACL of a deployment, from the department registry; nothing for a department not in it."""
    out: set[Acl] = set()
    for code, dept in departments.items():
        authority = getattr(dept, "kind", None) == "authority" and getattr(dept, "level", None) == "city"
        out.update(department_acls(code, prefix, authority=authority))
    for process in PROCESSES:
        out.update(process_acls(process, prefix))
    return out


@dataclass
class AclReport:
    created: list[Acl] = field(default_factory=list)
    deleted: list[Acl] = field(default_factory=list)
    unchanged: int = 0
    principals_removed: list[str] = field(default_factory=list)


def plan(wanted: set[Acl], existing: Iterable[Acl], prefix: str = "") -> tuple[list[Acl], list[Acl]]:
    """(to create, to delete): what is wanted and missing; what a managed principal holds beyond what is wanted."""
    have = set(existing)
    ours = {a for a in have if managed(a.principal.removeprefix("User:"), prefix)}
    return sorted(wanted - have), sorted(ours - wanted)


USER_NAME = re.compile(r"^[^,=\s]{1,200}$")  # SCRAM names hold no ',' or '=' unescaped
