"""The records the CLI, the demo and the seeds send to the bus, built from what an officer wrote (a file or the
arguments of a command): one builder per record type; what cannot become a record is an InputError."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

CONTENT_FIELDS = (
    "resource_code", "name", "provider", "summary", "classification", "base_database", "data_items", "format",
    "share_attribute", "share_conditions", "share_basis", "open_attribute", "open_conditions", "open_basis",
    "security_level", "classified", "usage_requirements", "update_cycle", "legal_basis", "system_code",
)
ITEM_FIELDS = ("name", "type", "subject_id", "basic", "personal", "open_treatment")
SUBMISSION_FIELDS = (*CONTENT_FIELDS, "kind", "change_date", "change_reason")
DEMAND_FIELDS = ("name", "provider", "resource_code", "data_items", "purpose", "basis")
SYSTEM_FIELDS = ("system_code", "name", "stage", "interfaces", "resource_codes")
INTERFACE_FIELDS = ("name", "kind", "resource_code")
CALENDAR_FIELDS = ("year", "source", "holidays", "workdays")


class InputError(ValueError):
    """What an officer wrote cannot become a record; the message names the field and what it takes."""


def read_file(path: str) -> Any:
    """What a YAML or JSON file ('-': standard input) holds."""
    where = "standard input" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is neither YAML nor JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{where} nests lists and mappings too deeply to read") from None
    except ValueError as exc:  # a date that is no day (2026-13-01), a number too long to convert
        raise InputError(f"{where} cannot be read: {exc}") from None


# What an officer wrote, checked against what the bus carries. Whether the content is acceptable (required
# fields, rules) is the agents' to say, with the rule id.


def _shown(value: Any) -> str:
    """A value read from a file, as a message names it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (datetime, date)):
        return f"the date {value}"
    return repr(value)


def _mapping(value: Any, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """`value` as a mapping of some of `fields`; unknown fields are an error, not ignored."""
    if not isinstance(value, dict):
        raise InputError(f"{what} is a mapping of fields ({', '.join(fields)}), not {_shown(value)}")
    odd = [k for k in value if not isinstance(k, str)]
    if odd:
        raise InputError(f"{what}: a field name is text, not {_shown(odd[0])}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InputError(f"unknown fields {', '.join(unknown)} in {what}; it has {', '.join(fields)}")
    return value


def _text(value: Any, field: str) -> str | None:
    """A text field: a number or a date is written as text, nothing stays None, a list or mapping is an error."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, dict, bytes)):
        raise InputError(f"{field} is text, not {_shown(value)}")
    return str(value)


def _required(value: Any, field: str) -> str:
    text = _text(value, field)
    if text is None:
        raise InputError(f"{field} is missing")
    return text


def _flag(value: Any, field: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise InputError(f"{field} is true or false, not {_shown(value)}")


def _sequence(value: Any, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{field} is a list, not {_shown(value)}")
    return value


def _envelope(now: datetime | None) -> dict[str, Any]:
    # every command record is its own event: a second, identical one is a new request, not a duplicate
    return {"event_id": uuid.uuid4().hex, "occurred_at": now or datetime.now(UTC)}


# --------------------------------------------------------------------------- the catalog


def entry_from_file(raw: Any, provider: str) -> dict[str, Any]:
    """A CatalogEntry content record from what an officer wrote; unknown keys are an error, not ignored."""
    raw = _mapping(raw, "an entry", SUBMISSION_FIELDS)
    items = []
    for n, i in enumerate(_sequence(raw.get("data_items"), "data_items"), 1):
        what = f"data item {n}"
        i = _mapping(i, what, ITEM_FIELDS)
        if i.get("name") is None:
            raise InputError(f"{what} needs at least a name and a type")
        items.append({"name": _required(i["name"], f"{what}: name"), "type": _text(i.get("type"), f"{what}: type")
                      or "", **{f: _flag(i.get(f), f"{what}: {f}") for f in ("subject_id", "basic", "personal")},
                      "open_treatment": _text(i.get("open_treatment"), f"{what}: open_treatment")})
    entry: dict[str, Any] = {f: _text(raw.get(f), f) for f in CONTENT_FIELDS if f not in ("data_items", "classified")}
    for f in ("resource_code", "name", "summary", "classification", "format", "share_attribute", "open_attribute",
              "security_level", "usage_requirements", "update_cycle", "legal_basis", "system_code"):
        entry[f] = entry[f] or ""  # missing required fields are the agent's to refuse, with the rule id
    entry["provider"] = entry["provider"] or provider
    entry["data_items"] = items
    entry["classified"] = _flag(raw.get("classified"), "classified")
    return entry


def submission_from_file(e: Any, top: dict[str, Any], department: str, now: datetime) -> dict[str, Any]:
    """A CatalogSubmission of one entry a file gives; `top` holds the file's own kind and change_date, if any."""
    entry = entry_from_file(e, department)
    reason = e.get("change_reason")
    if reason is not None and not isinstance(reason, str):
        raise InputError(f"change_reason is text, not {_shown(reason)}: write it in quotes")
    change_date = e.get("change_date", top.get("change_date"))
    return {**_envelope(now), "submitter": department,
            "kind": _required(e.get("kind", top.get("kind", "new")), "kind (new or update)"),
            "change_date": _text(change_date, "change_date") if change_date else None,
            "change_reason": reason, "entry": entry}


def submissions_from_file(raw: Any, department: str, where: str, now: datetime | None = None) -> list[dict]:
    """The CatalogSubmissions of a file: one entry, a list, or {entries: [...]} (which may give the kind and
    change_date of all its entries)."""
    top = _mapping(raw, "the file", ("entries", "kind", "change_date")) \
        if isinstance(raw, dict) and "entries" in raw else {}
    entries = top["entries"] if top else [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where} holds no catalog entry")
    now = now or datetime.now(UTC)
    return [submission_from_file(e, top, department, now) for e in entries]


def catalog_review(submission_id: str, reviewer: str, person: str, decision: str, reason: str | None,
                   now: datetime | None = None) -> dict[str, Any]:
    """A CatalogReview: the authority approves or rejects a submission."""
    return {**_envelope(now), "reviewer": reviewer, "reviewer_person": person, "submission_id": submission_id,
            "decision": decision, "reason": reason}


def system_from_file(raw: Any) -> dict[str, Any]:
    """The fields of a SystemRegistration from a system file."""
    raw = _mapping(raw, "a system", SYSTEM_FIELDS)
    interfaces = []
    for n, i in enumerate(_sequence(raw.get("interfaces"), "interfaces"), 1):
        what = f"interface {n}"
        i = _mapping(i, what, INTERFACE_FIELDS)
        interfaces.append({"name": _required(i.get("name"), f"{what}: name"),
                           "kind": _required(i.get("kind"), f"{what}: kind (share or open)"),
                           "resource_code": _text(i.get("resource_code"), f"{what}: resource_code")})
    return {"system_code": _required(raw.get("system_code"), "system_code"),
            "name": _required(raw.get("name"), "name"),
            "stage": _required(raw.get("stage", "registered"), "stage (registered or accepted)"),
            "interfaces": interfaces,
            "resource_codes": [_required(c, f"resource code {k}")
                               for k, c in enumerate(_sequence(raw.get("resource_codes"), "resource_codes"), 1)]}


def system_registration(raw: Any, department: str, now: datetime | None = None) -> dict[str, Any]:
    """A SystemRegistration of the information system a system file describes."""
    return {**_envelope(now), "department": department, **system_from_file(raw)}


def demands_from_file(raw: Any) -> list[dict[str, Any]]:
    """The Demand records of a demand list file: a list of demands, or {demands: [...]}."""
    demands = raw["demands"] if isinstance(raw, dict) and set(raw) == {"demands"} else raw
    if not isinstance(demands, list):
        raise InputError(f"a demand list is a list of demands ({', '.join(DEMAND_FIELDS)}), "
                         f"or demands: [...], not {_shown(demands)}")
    out = []
    for n, d in enumerate(demands, 1):
        what = f"demand {n}"
        d = _mapping(d, what, DEMAND_FIELDS)
        out.append({"name": _required(d.get("name"), f"{what}: name"),
                    "provider": _text(d.get("provider"), f"{what}: provider"),
                    "resource_code": _text(d.get("resource_code"), f"{what}: resource_code"),
                    "data_items": [_required(x, f"{what}: data item {k}")
                                   for k, x in enumerate(_sequence(d.get("data_items"), f"{what}: data_items"), 1)],
                    "purpose": _text(d.get("purpose") or "", f"{what}: purpose"),
                    "basis": _text(d.get("basis"), f"{what}: basis")})
    return out


def demand_list(raw: Any, department: str, now: datetime | None = None) -> dict[str, Any]:
    """A DemandList (需求清单) of the demands a demand list file gives."""
    items = demands_from_file(raw)
    return {**_envelope(now), "submitter": department, "items": items}


def catalog_change(department: str, change_date: str, change_kind: str, description: str, reported_by: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """A CatalogChange: a change of law, function or system the department's catalog must follow."""
    return {**_envelope(now), "department": department, "change_date": change_date, "change_kind": change_kind,
            "description": description, "reported_by": reported_by}


# --------------------------------------------------------------------------- subscriptions, the calendar


def subscription(department: str, resource: str, active: bool, now: datetime | None = None) -> dict[str, Any]:
    """A Subscription of `department` to the feed of `resource`, or its end."""
    return {**_envelope(now), "subscriber": department, "resource_code": resource, "active": active}


def calendar_year_from_file(raw: Any, publisher: str, where: str, now: datetime | None = None) -> dict[str, Any]:
    """A CalendarYear from a calendar file (year, source, holidays, workdays), checked as the calendar
    would take it."""
    from streams.rules.workcalendar import WorkCalendar, year_from_record

    raw = _mapping(raw, "a calendar file", CALENDAR_FIELDS)
    if "year" not in raw or "source" not in raw:
        raise InputError(f"a calendar file gives {', '.join(CALENDAR_FIELDS)}")
    source = _required(raw["source"], "source (the notice the calendar comes from)")
    try:
        year = year_from_record(raw)
        WorkCalendar().publish(year)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None
    # what a notice lists: weekdays off, and weekends worked (a Saturday "off" or a Monday "worked" is a slip)
    weekend_off = sorted(d.isoformat() for d in year.holidays if d.weekday() >= 5)
    weekday_worked = sorted(d.isoformat() for d in year.workdays if d.weekday() < 5)
    if weekend_off or weekday_worked:
        said = [f"holidays lists {', '.join(weekend_off)}, on a Saturday or Sunday" if weekend_off else "",
                f"workdays lists {', '.join(weekday_worked)}, a weekday" if weekday_worked else ""]
        raise InputError(f"{where}: {'; '.join(x for x in said if x)}: holidays are the weekdays off, workdays "
                         "the Saturdays and Sundays worked (调休上班)")
    return {**_envelope(now), "year": year.year, "holidays": sorted(d.isoformat() for d in year.holidays),
            "workdays": sorted(d.isoformat() for d in year.workdays), "source": source, "published_by": publisher}


# --------------------------------------------------------------------------- sharing


def share_request(requester: str, resource_code: str, purpose: str, items: list[str], subjects: list[str],
                  valid_from: date, valid_until: date, now: datetime | None = None) -> dict[str, Any]:
    """A ShareRequest for a conditional resource."""
    return {**_envelope(now), "requester": requester, "resource_code": resource_code, "purpose": purpose,
            "items": items, "subjects": subjects, "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat()}


def share_answer(request_id: str, provider: str, person: str, decision: str, reason: str | None = None,
                 basis: str | None = None, items: list[str] | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """A ShareAnswer: the provider approves (fewer `items`, if given) or refuses with reason and basis."""
    return {**_envelope(now), "request_id": request_id, "provider": provider, "person": person,
            "decision": decision, "reason": reason, "basis": basis, "items": items or []}


def grant_revocation(grant_id: str, by: str, person: str, reason: str, now: datetime | None = None) -> dict[str, Any]:
    """A GrantRevocation ending a directed authorization."""
    return {**_envelope(now), "grant_id": grant_id, "by": by, "person": person, "reason": reason}


def dispute(request_id: str, by: str, reason: str, now: datetime | None = None) -> dict[str, Any]:
    """A Dispute taking a share decision to the authority."""
    return {**_envelope(now), "request_id": request_id, "by": by, "reason": reason}


def dispute_ruling(request_id: str, authority: str, person: str, ruling: str, reason: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """A DisputeRuling: the authority upholds or overturns the decision disputed."""
    return {**_envelope(now), "request_id": request_id, "authority": authority, "person": person,
            "ruling": ruling, "reason": reason}


# --------------------------------------------------------------------------- cases


def party_registration(party_id: str, name: str, registered_by: str, now: datetime | None = None) -> dict[str, Any]:
    """A PartyRegistration: a resident or an organisation that may open cases and request open data."""
    return {**_envelope(now), "party_id": party_id, "name": name, "registered_by": registered_by}


def party_credentials(party_id: str, issued_by: str, now: datetime | None = None) -> dict[str, Any]:
    """A PartyCredentials: the party was issued its broker credentials and its open feed."""
    return {**_envelope(now), "party_id": party_id, "issued_by": issued_by}


def case_opening(case_type: str, requester: str, resource_code: str, reason: str, *, subject_id: str | None = None,
                 items: list[str] = (), person: str | None = None, use: str | None = None,
                 award: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A CaseOpening; its event id is the case id."""
    return {**_envelope(now), "case_type": case_type, "requester": requester, "person": person,
            "resource_code": resource_code, "subject_id": subject_id, "items": list(items), "reason": reason,
            "use": use, "award": award}


def case_step(case_id: str, action: str, actor: str, person: str, *, outcome: str | None = None,
              reason: str | None = None, basis: str | None = None, to_department: str | None = None,
              extension_days: int | None = None, approved_by: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """A CaseStep: mark, forward, answer, decide or extend."""
    return {**_envelope(now), "case_id": case_id, "action": action, "actor": actor, "person": person,
            "outcome": outcome, "reason": reason, "basis": basis, "to_department": to_department,
            "extension_days": extension_days, "approved_by": approved_by}
