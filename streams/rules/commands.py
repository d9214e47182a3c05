"""Who acts (R-39.1, R-40.1): what a department's officers send besides data, and the proof of who sent it.

A department sends its catalog work, share requests and answers, case steps, deadline extensions and subscriptions on
its own inbound topic, as it sends its data: the broker lets only that department write it, so the topic proves who
acts. The bus passes each command on to the inbox where its agent takes it (a subscription to the subscriptions
topic), once the department it names as acting is the one that wrote it. Departments may not write the inboxes
themselves; the operators, who may, send there directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streams.rules.refusals import Refusal
from topics import registry

# schema -> (the topic its agent reads, the field naming the department that acts)
COMMANDS: dict[str, tuple[registry.TopicSpec, str]] = {
    "govbus.catalog.CatalogSubmission": (registry.CATALOG_INBOX, "submitter"),
    "govbus.catalog.CatalogReview": (registry.CATALOG_INBOX, "reviewer"),
    "govbus.catalog.CatalogChange": (registry.CATALOG_INBOX, "reported_by"),
    "govbus.catalog.SystemRegistration": (registry.CATALOG_INBOX, "department"),
    "govbus.catalog.DemandList": (registry.CATALOG_INBOX, "submitter"),
    "govbus.sharing.ShareRequest": (registry.SHARING_INBOX, "requester"),
    "govbus.sharing.ShareAnswer": (registry.SHARING_INBOX, "provider"),
    "govbus.sharing.Dispute": (registry.SHARING_INBOX, "by"),
    "govbus.sharing.DisputeRuling": (registry.SHARING_INBOX, "authority"),
    "govbus.sharing.GrantRevocation": (registry.SHARING_INBOX, "by"),
    "govbus.cases.CaseOpening": (registry.CASES_INBOX, "requester"),
    "govbus.cases.CaseStep": (registry.CASES_INBOX, "actor"),
    "govbus.deadlines.DeadlineCommand": (registry.DEADLINE_COMMANDS, "actor"),
    "govbus.exchange.Subscription": (registry.SUBSCRIPTIONS, "subscriber"),
}
# schema -> the key its inbox is compacted on, from the record (the sender's key is not taken for it)
KEYS: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
    "govbus.exchange.Subscription": lambda r: f"{r['resource_code']}|{r['subscriber']}".encode(),
}
# schema -> (field, the values a department may send): the rest of that schema is the bus's own record. A deadline
# starts and closes when an agent sees the case received and answered; a department only asks to extend it.
DEPARTMENT_ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "govbus.deadlines.DeadlineCommand": ("action", frozenset({"extend"})),
}


def acting(schema: str, record: Mapping[str, Any]) -> str | None:
    """The department a command names as acting (None for a schema that is no department's command)."""
    spec = COMMANDS.get(schema)
    return None if spec is None else record.get(spec[1])


def command_key(schema: str, record: Mapping[str, Any], sent: bytes | None) -> bytes:
    """The key a command goes on to its inbox with: the one its inbox is compacted on, else the one it was sent with
    (its event id when it had none)."""
    keyed = KEYS.get(schema)
    if keyed is not None:
        return keyed(record)
    return sent if sent is not None else record["event_id"].encode()


def check_command(schema: str, record: Mapping[str, Any], proven: str | None) -> Refusal | None:
    """None when the command may go on to its inbox: its schema is a department's command, and the department it
    names as acting is the one whose inbound topic it came from (`proven`; None for the operators' topic, where the
    record's own word is taken)."""
    if schema not in COMMANDS:
        return Refusal(f"a {schema} is not sent on an inbound topic: the inbound topics carry data "
                       f"(govbus.exchange.DataDelivery) and a department's commands "
                       f"({', '.join(sorted(s.rsplit('.', 1)[1] for s in COMMANDS))})", code="wrong_schema")
    actor = acting(schema, record)
    if proven is None:
        return None
    if schema in DEPARTMENT_ACTIONS:
        field, allowed = DEPARTMENT_ACTIONS[schema]
        if record.get(field) not in allowed:
            return Refusal(f"{proven} sent on its own inbound topic a {schema.rsplit('.', 1)[1]} whose {field} is "
                           f"{record.get(field)!r}: a department may only send {' or '.join(sorted(allowed))}; the "
                           "rest is the bus's own record of the case (its agents start and close deadlines when "
                           "they see a case received and answered), so the command is refused and the authority "
                           "alerted", ("R-39.1", "R-40.1"), code="suspected_tampering")
    if actor == proven:
        return None
    field = COMMANDS[schema][1]
    return Refusal(f"{proven} sent on its own inbound topic a {schema.rsplit('.', 1)[1]} whose {field} is "
                   f"{actor!r}: a department acts only in its own name, so the command is refused and the authority "
                   "alerted", ("R-39.1", "R-40.1"), code="suspected_tampering")
