"""Rules of the exchange path, as pure functions: is a publication acceptable, and who gets it.

An agent calls these and writes what they return; no policy lives in the agents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.provenance import provenance_digest

EVENT_ID = re.compile(r"^[\w.:-]{1,128}$")
RESOURCE_CODE = re.compile(r"^[\w.-]{1,64}$")


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str
    rule_ids: tuple[str, ...] = ()


@dataclass
class Subscriptions:
    """resource code -> departments subscribed to it (the plain subscription list)."""

    by_resource: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, subscriber: str, resource_code: str, active: bool) -> None:
        subs = self.by_resource.setdefault(resource_code, set())
        if active:
            subs.add(subscriber)
        else:
            subs.discard(subscriber)

    def of(self, resource_code: str) -> set[str]:
        return self.by_resource.get(resource_code, set())


def check_delivery(d: Mapping[str, Any], departments: Mapping[str, Any]) -> Refusal | None:
    """None when the publication may enter the exchange, else why not."""
    if not EVENT_ID.match(d["event_id"]):
        return Refusal("invalid_record",
                       f"event_id {d['event_id']!r} is not 1-128 letters, digits, '.', ':', '_' or '-'")
    if d["publisher"] not in departments:
        return Refusal(
            "unknown_publisher",
            f"publisher {d['publisher']!r} is not a department registered on the bus",
            ("R-17.1",),
        )
    if not RESOURCE_CODE.match(d["resource_code"]):
        return Refusal("invalid_record", f"resource_code {d['resource_code']!r} is not a catalog code")
    if not d["subject_id"]:
        return Refusal("invalid_record", "subject_id is empty: every record is about one resident or organisation",
                       ("R-17.2",))
    if not d["items"]:
        return Refusal("invalid_record", "the publication carries no data items")
    return None


def route(d: Mapping[str, Any], subscribers: Iterable[str], now: datetime) -> list[dict[str, Any]]:
    """One feed record for each receiving department (never the publisher itself)."""
    digest = provenance_digest(d["publisher"], d["resource_code"], d["event_id"], d["subject_id"], d["items"])
    return [
        {
            "event_id": d["event_id"],
            "subscriber": dept,
            "publisher": d["publisher"],
            "resource_code": d["resource_code"],
            "subject_id": d["subject_id"],
            "system_code": d.get("system_code"),
            "items": d["items"],
            "occurred_at": d["occurred_at"],
            "delivered_at": now,
            "grant_id": f"subscription:{d['resource_code']}:{dept}",
            "purpose": None,
            "digest": digest,
            "flags": [],
        }
        for dept in sorted(subscribers)
        if dept != d["publisher"]
    ]


def reject_record(*, source_topic: str, partition: int, offset: int, raw: bytes, code: str, reason: str,
                  now: datetime, publisher: str | None = None, event_id: str | None = None,
                  rule_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The rejects-topic record; its id is the source position, so reprocessing is idempotent."""
    return {
        "reject_id": f"{source_topic}:{partition}:{offset}",
        "rejected_at": now,
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "code": code,
        "reason": reason,
        "publisher": publisher,
        "original_event_id": event_id,
        "rule_ids": list(rule_ids),
        "raw": bytes(raw),
    }
