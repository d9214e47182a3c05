"""Opening data to the public (Ch. 5 of the measures) as pure functions: which open deliveries a publication makes,
to whom, and what they carry. Unconditionally open data goes to the open feed every authenticated party reads
(R-32.3); conditionally open data only to the parties approved for it, in the approved items (R-32.1). Every open
delivery is desensitized as the catalog entry declares (R-29.1) and names its source department and the day it was
retrieved (R-32.2). No open delivery carries the subject's identifier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.provenance import provenance_digest
from streams.rules.desensitize import desensitize

OPEN_ATTRIBUTES = ("unconditional", "conditional")
ZONE = ZoneInfo("Asia/Shanghai")


def open_record(d: Mapping[str, Any], entry: Mapping[str, Any], provider_name: str, items: Mapping[str, Any],
                now: datetime, grant: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One OpenDelivery: the desensitized items, the source department, the retrieval date."""
    content = entry["entry"]
    shown = desensitize(entry, items)
    return {
        "event_id": d["event_id"], "resource_code": d["resource_code"], "resource_name": content["name"],
        "source_department": content["provider"], "source_department_name": provider_name,
        "retrieved_on": now.astimezone(ZONE).date().isoformat(), "published_at": d["occurred_at"],
        "delivered_at": now, "open_attribute": content["open_attribute"], "items": shown,
        "party": grant["party"] if grant else None, "grant_id": grant["grant_id"] if grant else None,
        "digest": provenance_digest(content["provider"], d["resource_code"], d["event_id"], "", shown),
    }


def open_records(d: Mapping[str, Any], entry: Mapping[str, Any], provider_name: str,
                 grants: Iterable[Mapping[str, Any]], now: datetime) -> list[tuple[str | None, dict[str, Any]]]:
    """(party, record) for each open delivery of a publication: party None for the open feed of unconditionally
    open data; one per approved party, in its approved items, for conditionally open data; none otherwise."""
    attribute = entry["entry"]["open_attribute"]
    if attribute == "unconditional":
        return [(None, open_record(d, entry, provider_name, d["items"], now))]
    if attribute != "conditional":
        return []
    out = []
    for g in sorted(grants, key=lambda g: g["grant_id"]):
        if g["revoked"] or g["resource_code"] != d["resource_code"]:
            continue
        items = {k: v for k, v in d["items"].items() if k in g["items"]}
        out.append((g["party"], open_record(d, entry, provider_name, items, now, g)))
    return out
