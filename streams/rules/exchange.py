"""Rules of the exchange path, as pure functions: is a publication acceptable, and who gets it.

An agent calls these and writes what they return; no policy lives in the agents.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from schemas.provenance import digester, json_text
from streams.rules.identifiers import subject_kind, subject_kind_problem
from streams.rules.refusals import Refusal
from streams.rules.sharing import project

EVENT_ID = re.compile(r"^[\w.:-]{1,128}$")
RESOURCE_CODE = re.compile(r"^[\w.-]{1,64}$")


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


def unstorable(value: Any, where: str = "the record") -> str | None:
    """What in a decoded record no store of the bus can keep, in words, else None: PostgreSQL's text
    and JSON hold no NUL character, JSON no NaN or infinity. Refused at the door, so the publisher
    learns it at once instead of a sink finding it later."""
    if _plain(value):
        return None
    todo = [(where, value)]
    while todo:
        path, v = todo.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return f"{path} holds a NUL character (\\x00), which no store can keep as text"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{path} is {v}, which is not a number a store can keep"
        elif isinstance(v, Mapping):
            for k, x in v.items():
                if isinstance(k, str) and "\x00" in k:
                    return f"a name in {path} holds a NUL character (\\x00), which no store can keep as text"
                todo.append((f"data item {k!r}" if path == "items" else
                             f"field {k!r}" if path == "the record" else f"{path}.{k}", x))
        elif isinstance(v, (list, tuple)):
            todo.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return None


_FINE = frozenset((int, bool, type(None)))


def _plain(value: Any) -> bool:
    """True for the usual value, at once: a text, or a dict of text and numbers with no NUL and no NaN."""
    if type(value) is str:
        return "\x00" not in value
    if type(value) is not dict:
        return value is None
    for k, x in value.items():
        t = type(x)
        if type(k) is not str or "\x00" in k:
            return False
        if t is str:
            if "\x00" in x:
                return False
        elif t is float:
            if not math.isfinite(x):
                return False
        elif t not in _FINE:
            return False
    return True


def check_publisher(d: Mapping[str, Any], proven: str | None) -> Refusal | None:
    """None when the publisher the publication names is the one the bus knows published it (R-39.1): the
    department whose inbound topic it was read from, which only that department may write; `proven` None for
    the operators' topic. A mismatch is someone publishing in another's name (R-40.1)."""
    if proven is None or d["publisher"] == proven:
        return None
    return Refusal(f"{proven} published on its own inbound topic a record that names {d['publisher']!r} as its "
                   f"publisher: a department publishes only in its own name, so the record is refused and the "
                   f"authority alerted", ("R-39.1", "R-40.1"), code="suspected_tampering")


def check_delivery(d: Mapping[str, Any], departments: Mapping[str, Any]) -> Refusal | None:
    """None when the publication may enter the exchange, else why not."""
    if not EVENT_ID.match(d["event_id"]):
        return Refusal(f"event_id {d['event_id']!r} is not 1-128 letters, digits, '.', ':', '_' or '-'",
                       code="invalid_record")
    if d["publisher"] not in departments:
        return Refusal(f"publisher {d['publisher']!r} is not a department registered on the bus", ("R-17.1",),
                       code="unknown_publisher")
    if not RESOURCE_CODE.match(d["resource_code"]):
        return Refusal(f"resource_code {d['resource_code']!r} is not a catalog code", code="invalid_record")
    if not d["subject_id"]:
        return Refusal("subject_id is empty: every record is about one resident or organisation",
                       ("R-17.2",), code="invalid_record")
    if not d["items"]:
        return Refusal("the publication carries no data items", code="invalid_record")
    problem = unstorable(d["items"], "items") or unstorable(d.get("system_code"), "system_code")
    if problem:
        return Refusal(f"{problem}; correct it and publish again", ("R-8.1",), code="unstorable_value")
    return None


def feed_records(d: Mapping[str, Any], routes: Iterable[Any], now: datetime) -> list[dict[str, Any]]:
    """One feed record per route (see streams.rules.sharing.routes): exactly the granted items, naming the
    grant and purpose it is delivered under, with a provenance digest over what is delivered (R-28.1)."""
    common = feed_common(d, now)
    return [{**common, "subscriber": r.department, "items": items, "grant_id": r.grant_id, "purpose": r.purpose,
             "digest": digest} for r, (items, digest) in feed_scopes(d, routes)]


def feed_common(d: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What every feed record of one publication says alike: the publication, and when it was delivered."""
    return {"event_id": d["event_id"], "publisher": d["publisher"], "resource_code": d["resource_code"],
            "subject_id": d["subject_id"], "system_code": d.get("system_code"), "occurred_at": d["occurred_at"],
            "delivered_at": now, "flags": [], "case_ids": [], "correction_of": None}


def feed_scopes(d: Mapping[str, Any], routes: Iterable[Any]) -> list[tuple[Any, tuple[dict[str, Any], str]]]:
    """Each route with the scope it receives: (exactly the granted items, their provenance digest). Routes
    granted the same items share one scope, the same tuple."""
    routes = list(routes)
    granted = list(dict.fromkeys(r.items for r in routes))
    scopes = dict(zip(granted, scoped_items(d, granted), strict=True))
    return [(r, scopes[r.items]) for r in routes]


def scoped_items(d: Mapping[str, Any], granted: Iterable[tuple[str, ...] | None]) -> list[tuple[dict[str, Any], str]]:
    """For each grant's items (None: all of them), what it receives of the publication: exactly those items
    (R-26.2), and their provenance digest (R-28.1)."""
    digest_of = digester(d["publisher"], d["resource_code"], d["event_id"], d["subject_id"])
    out = []
    for allowed in granted:
        items = project(d["items"], allowed)
        out.append((items, digest_of(items)))
    return out


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


# --------------------------------------------------------------------------- against the catalog


def check_source(resource_code: str, publisher: str, entry: Mapping[str, Any] | None) -> Refusal | None:
    """What the catalog alone says of `publisher` publishing `resource_code`, whatever the records: R-10.1 it is
    catalogued, R-17.1 `publisher` is its one source (the bus's check of each publication, and `govbus publish`'s
    before it sends any)."""
    if entry is None:
        return Refusal(f"{resource_code} is not in the approved catalog: nothing is "
                       "aggregated or shared for an uncatalogued resource", ("R-10.1",), code="unknown_resource")
    provider = entry["entry"]["provider"]
    if publisher != provider:
        return Refusal(f"{publisher} is not the source of {resource_code}: its one registered source is {provider} "
                       "(one datum, one source)", ("R-17.1",), code="one_source_violation")
    return None


def check_against_catalog(d: Mapping[str, Any], entry: Mapping[str, Any] | None,
                          subject_problem: Callable[[str], str | None]) -> Refusal | None:
    """R-10.1 catalogued, R-17.1 from its one source, R-17.2 a valid subject, items as catalogued."""
    refusal = check_source(d["resource_code"], d["publisher"], entry)
    if refusal is not None:
        return refusal
    problem = subject_problem(d["subject_id"])
    if problem is not None:
        return Refusal(problem, ("R-17.2",), code="invalid_identifier")
    made = entry_items(entry)
    if made.subject_kind is not None:
        problem = subject_kind_problem(d["subject_id"], made.subject_kind)
        if problem is not None:
            return Refusal(f"{problem}: the subject of {d['resource_code']} is its {made.subject_item}",
                           ("R-17.2",), code="invalid_identifier")
    items = d["items"]
    for name, kind in made.typed:
        value = items.get(name)
        if value is not None and not VALUE_FITS[kind](value):
            return Refusal(f"{name} is {value!r}, not {VALUE_WORDS[kind]}, as {d['resource_code']}'s catalog entry "
                           f"defines it ({kind})", ("R-11.1",), code="items_mismatch")
    defined = made.names
    if defined.issuperset(d["items"]):
        return None
    unknown = sorted(set(d["items"]) - defined)
    if unknown:
        return Refusal(f"{', '.join(unknown)} are not data items of {d['resource_code']} in the "
                       f"catalog; it has {', '.join(sorted(defined))}", ("R-11.1",), code="items_mismatch")
    return None


def _is_date(value: Any) -> bool:
    """YYYY-MM-DD and a day of the calendar (date.fromisoformat alone takes 19800101 and week dates too)."""
    if type(value) is not str or len(value) != 10 or value[4] != "-" or value[7] != "-":
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: Any) -> bool:
    if type(value) is not str or len(value) < 16 or not _is_date(value[:10]) or value[10] not in "T ":
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_INTEGER = re.compile(r"^[+-]?[0-9]+$")  # ASCII digits: \d takes ６ and ٣ too
_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_BOOLEAN_WORDS = frozenset({"true", "false", "True", "False", "TRUE", "FALSE", "是", "否", "1", "0"})
# the catalog's item types (streams.rules.catalog.ITEM_TYPES) a value is checked against; a CSV cell is text, so
# numbers and truth values may come written as text
VALUE_FITS: dict[str, Callable[[Any], bool]] = {
    "date": _is_date,
    "datetime": _is_datetime,
    "integer": lambda v: type(v) is int or (type(v) is str and _INTEGER.match(v) is not None),
    "decimal": lambda v: (type(v) is float and math.isfinite(v)) or type(v) is int
    or (type(v) is str and _DECIMAL.match(v) is not None),
    "boolean": lambda v: type(v) is bool or (type(v) is str and v in _BOOLEAN_WORDS),
}
VALUE_WORDS = {"date": "a date written YYYY-MM-DD", "datetime": "a date and time written YYYY-MM-DDTHH:MM[:SS]",
               "integer": "a whole number", "decimal": "a number (digits, a point and digits)",
               "boolean": "true or false (是 or 否, 1 or 0)"}


def item_key(item: Mapping[str, Any]) -> str:
    """Data items are the same when their catalog definitions are: name and type, whatever the resource."""
    return f"{item['name']}:{item['type']}"


@dataclass(frozen=True)
class EntryItems:
    """What the rules read of a catalog entry's data items, worked out once per entry."""

    names: frozenset[str]  # every data item's name
    keys: dict[str, str]  # name -> item definition (item_key), for the items that are not the subject's identifier
    typed: tuple[tuple[str, str], ...] = ()  # (name, type) of the items whose values are checked (VALUE_FITS)
    subject_item: str | None = None  # the item that names the subject, e.g. 公民身份号码
    subject_kind: str | None = None  # resident | organisation, when its name says which


_ENTRY_ITEMS: dict[int, tuple[Mapping[str, Any], EntryItems]] = {}


def entry_items(entry: Mapping[str, Any]) -> EntryItems:
    """The entry's EntryItems, kept for as long as the same entry object is read (the catalog replaces an
    entry when it changes, never alters one in place)."""
    hit = _ENTRY_ITEMS.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    items = entry["entry"]["data_items"]
    subject = next((i["name"] for i in items if i.get("subject_id")), None)
    made = EntryItems(frozenset(i["name"] for i in items),
                      {i["name"]: item_key(i) for i in items if not i.get("subject_id")},
                      tuple((i["name"], i["type"]) for i in items
                            if i.get("type") in VALUE_FITS and not i.get("subject_id")),
                      subject, subject_kind(subject))
    if len(_ENTRY_ITEMS) >= 4096:
        _ENTRY_ITEMS.clear()
    _ENTRY_ITEMS[id(entry)] = (entry, made)
    return made


def item_sources(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Item definition -> (registered source department, resource): the base database's lead department
    where the item is a base item, else the provider of the earliest approved entry defining it."""
    ranked = sorted(entries, key=lambda e: (e["entry"].get("base_database") is None, str(e["approved_at"])))
    sources: dict[str, tuple[str, str]] = {}
    for e in ranked:
        for item in e["entry"]["data_items"]:
            if not item.get("subject_id"):
                sources.setdefault(item_key(item), (e["entry"]["provider"], e["resource_code"]))
    return sources


def value_digest(value: Any) -> str:
    return hashlib.sha256(json_text(value).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Finding:
    kind: str  # duplicate_collection | republication
    source_department: str
    source_resource: str
    items: tuple[str, ...]
    rule_ids: tuple[str, ...]


def duplicate_findings(d: Mapping[str, Any], entry: Mapping[str, Any], sources: Mapping[str, tuple[str, str]],
                       memory: Mapping[str, list], receives: Callable[[str, str], bool]) -> list[Finding]:
    """R-17.3 / R-45.1: items about this subject that another department is the registered source of,
    and has published about this subject; R-27.1 / R-48.1: the same, with the same values, by a
    department that receives the source's resource (passing on received data as its own)."""
    keys = entry_items(entry).keys
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for name, value in d["items"].items():
        key = keys.get(name)
        if key is None:
            continue
        source = sources.get(key)
        seen = memory.get(key)
        if source is None or source[0] == d["publisher"] or not seen or seen[0] != source[0]:
            continue
        republished = receives(d["publisher"], source[1]) and seen[2] == value_digest(value)
        grouped[("republication" if republished else "duplicate_collection", *source)].append(name)
    return [
        Finding(kind, dept, resource, tuple(sorted(items)),
                ("R-27.1", "R-48.1") if kind == "republication" else ("R-17.3", "R-45.1"))
        for (kind, dept, resource), items in sorted(grouped.items())
    ]


def remember_sources(d: Mapping[str, Any], entry: Mapping[str, Any], sources: Mapping[str, tuple[str, str]],
                     memory: dict[str, list]) -> bool:
    """Record what the registered source published about this subject; True when memory changed."""
    changed = False
    items, publisher = d["items"], d["publisher"]
    for name, key in entry_items(entry).keys.items():
        if name not in items:
            continue
        if sources.get(key, (None,))[0] == publisher:
            new = [publisher, d["resource_code"], value_digest(items[name])]
            if memory.get(key) != new:
                memory[key] = new
                changed = True
    return changed


def alert_id(f: Finding, publisher: str, system_code: str | None, resource_code: str) -> str:
    raw = "|".join([f.kind, publisher, f.source_department, system_code or "-", resource_code, *f.items])
    return f"{f.kind}:{hashlib.sha1(raw.encode()).hexdigest()[:16]}"
