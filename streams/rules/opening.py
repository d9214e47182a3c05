"""Opening data to the public (Ch. 5 of the measures) as pure functions: which open deliveries a publication makes,
to whom, and what they carry. Unconditionally open data goes to the open feed every authenticated party reads
(R-32.3); conditionally open data only to the parties approved for it, in the approved items (R-32.1). Every open
delivery is desensitized as the catalog entry declares (R-29.1) and names its source department and the day it was
retrieved (R-32.2). No open delivery carries the subject's identifier."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


# ---- the open catalog: which resources are open, and how, for people and for portals that harvest it ----

OPEN_LABELS = {"unconditional": "无条件开放", "conditional": "有条件开放"}
# the EU access-rights vocabulary, which DCAT-AP and CKAN's DCAT harvester read
ACCESS_RIGHTS = {"unconditional": "http://publications.europa.eu/resource/authority/access-right/PUBLIC",
                 "conditional": "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"}
DCAT_CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                "foaf": "http://xmlns.com/foaf/0.1/", "xsd": "http://www.w3.org/2001/XMLSchema#",
                "owl": "http://www.w3.org/2002/07/owl#"}


def is_open(entry: Mapping[str, Any]) -> bool:
    """True for an approved entry in the open catalog: its open attribute is unconditional or conditional."""
    return entry["entry"]["open_attribute"] in OPEN_ATTRIBUTES


def open_entries(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted((e for e in entries if is_open(e)), key=lambda e: e["resource_code"])


def _iso(t: Any) -> str:
    return t.isoformat() if isinstance(t, datetime) else str(t)


def open_items(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The data items an open delivery carries, each with how the bus desensitizes it; the subject's identifier is
    never among them."""
    return [{"name": i["name"], "type": i["type"], "personal": bool(i.get("personal")),
             "open_treatment": i.get("open_treatment") or "none"}
            for i in entry["entry"]["data_items"] if not i.get("subject_id")]


def how_to_receive(entry: Mapping[str, Any]) -> str:
    if entry["entry"]["open_attribute"] == "unconditional":
        return "any registered party with credentials reads it on the open feed (govbus.open.feed)"
    return ("an open request, approved within 15 working days, opens the approved items on the party's own feed "
            f"(`govbus case open-request {entry['resource_code']}`)")


def open_catalog_json(entries: Iterable[Mapping[str, Any]], department_names: Mapping[str, str]) -> list[dict]:
    """The open catalog as plain JSON: one object per open resource."""
    out = []
    for e in open_entries(entries):
        c = e["entry"]
        out.append({
            "resource_code": e["resource_code"], "name": c["name"], "summary": c["summary"],
            "provider": c["provider"], "provider_name": department_names.get(c["provider"], c["provider"]),
            "county": e.get("county"), "open_attribute": c["open_attribute"],
            "open_label": OPEN_LABELS[c["open_attribute"]], "open_conditions": c.get("open_conditions"),
            "open_basis": c.get("open_basis"), "update_cycle": c["update_cycle"], "format": c["format"],
            "version": e["version"], "approved_at": _iso(e["approved_at"]), "data_items": open_items(e),
            "how_to_receive": how_to_receive(e),
        })
    return out


def dcat_catalog(entries: Iterable[Mapping[str, Any]], department_names: Mapping[str, str], *, base: str,
                 title: str, publisher: str | None, access_url: Callable[[Mapping[str, Any]], str]) -> dict:
    """The open catalog as JSON-LD in the DCAT vocabulary (a dcat:Catalog of dcat:Dataset), for open-data portals
    (CKAN's DCAT harvester and the like). `base` is the IRI the catalog's own identifiers start with;
    `access_url(entry)` the IRI a party reads the dataset at."""
    def org(code: str) -> dict:
        return {"@id": f"{base}department/{code}", "@type": "foaf:Organization", "dct:identifier": code,
                "foaf:name": department_names.get(code, code)}

    def text(value: str) -> dict:
        return {"@value": value, "@language": "zh"}

    datasets = []
    for e in open_entries(entries):
        c, code = e["entry"], e["resource_code"]
        rights = f"{OPEN_LABELS[c['open_attribute']]}" + (f"：{c['open_conditions']}" if c.get("open_conditions")
                                                           else "")
        if c.get("open_basis"):
            rights += f"（依据：{c['open_basis']}）"
        items = open_items(e)
        datasets.append({
            "@id": f"{base}dataset/{code}", "@type": "dcat:Dataset", "dct:identifier": code,
            "dct:title": text(c["name"]), "dct:description": text(c["summary"]), "dct:publisher": org(c["provider"]),
            "dct:accessRights": {"@id": ACCESS_RIGHTS[c["open_attribute"]]},
            "dct:rights": {"@type": "dct:RightsStatement", "dct:description": text(rights)},
            "dct:modified": {"@value": _iso(e["approved_at"]), "@type": "xsd:dateTime"},
            "dct:accrualPeriodicity": text(c["update_cycle"]), "owl:versionInfo": str(e["version"]),
            "dcat:keyword": [text(i["name"]) for i in items],
            **({"dct:spatial": text(e["county"])} if e.get("county") else {}),
            "dcat:distribution": [{
                "@id": f"{base}dataset/{code}/open-feed", "@type": "dcat:Distribution",
                "dct:title": text(f"{c['name']}（脱敏开放数据流）"),
                "dct:description": text(how_to_receive(e)),
                "dcat:accessURL": {"@id": access_url(e)}, "dct:format": "Avro (single-object encoding)",
                "dcat:mediaType": "application/vnd.apache.avro+binary",
                "dct:conformsTo": {"@id": f"{base}schema/govbus.open.OpenDelivery.v1"},
            }],
        })
    modified = max((_iso(e["approved_at"]) for e in open_entries(entries)), default=None)
    catalog = {"@context": DCAT_CONTEXT, "@id": f"{base}catalog/open", "@type": "dcat:Catalog",
               "dct:title": text(title), "dcat:dataset": datasets}
    if publisher:
        catalog["dct:publisher"] = org(publisher)
    if modified:
        catalog["dct:modified"] = {"@value": modified, "@type": "xsd:dateTime"}
    return catalog
