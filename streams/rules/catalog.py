"""Rules of the catalog (Ch. 2 of the measures) as pure functions, one per rule, with reasons written for the
department officer who reads them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from streams.rules.deadlines import statutory_due
from streams.rules.refusals import Refusal
from streams.rules.workcalendar import Deadline, WorkCalendar
from topics.departments import Department

SHARE_ATTRIBUTES = ("unconditional", "conditional", "none")
OPEN_ATTRIBUTES = ("unconditional", "conditional", "not_open")
BASE_DATABASES = ("population", "legal_entities", "geospatial", "e_licences")
ITEM_TYPES = ("string", "integer", "decimal", "date", "datetime", "boolean", "identifier")
UPDATE_CYCLES = ("realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "on_change")

# The Chinese words officers write, mapped to the attribute values of the bus.
ATTRIBUTE_WORDS = {
    "无条件共享": "unconditional", "有条件共享": "conditional", "不予共享": "none",
    "无条件开放": "unconditional", "有条件开放": "conditional", "不予开放": "not_open",
}

# what every entry must carry, with the names officers know them by
REQUIRED = {
    "resource_code": "资源代码 resource code",
    "name": "资源名称 name",
    "provider": "提供方 provider",
    "summary": "资源摘要 summary",
    "classification": "资源分类 classification",
    "format": "资源格式 format",
    "share_attribute": "共享属性 share attribute",
    "open_attribute": "开放属性 open attribute",
    "security_level": "安全级别 security level",
    "usage_requirements": "使用要求 usage requirements",
    "update_cycle": "更新周期 update cycle",
    "legal_basis": "法律依据 legal basis",
    "system_code": "所属信息系统 information system",
}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def check_entry(submitter: str, entry: Mapping[str, Any], departments: Mapping[str, Department],
                systems: Mapping[str, Mapping[str, Any]]) -> list[Refusal]:
    """Every reason the entry cannot go to review, rule by rule; empty when it can."""
    if entry.get("classified"):
        return [check_not_classified(entry)]
    return [*check_complete(entry), *check_provider(submitter, entry, departments), *check_share_attribute(entry),
            *check_open_attribute(entry), *check_open_treatments(entry), *check_base_database(entry, departments),
            *check_system_registered(entry, systems)]


def check_not_classified(entry: Mapping[str, Any]) -> Refusal | None:
    """R-3.1: classified (涉密) resources never enter the bus."""
    if entry.get("classified"):
        return Refusal("classified (涉密) resources never enter the exchange: keep this resource off the bus",
                       ("R-3.1",))
    return None


def check_complete(entry: Mapping[str, Any]) -> list[Refusal]:
    """R-11.1: the fields every catalog entry carries, and data items with exactly one subject identifier."""
    problems: list[Refusal] = []
    missing = [label for field, label in REQUIRED.items() if _blank(entry.get(field))]
    if missing:
        problems.append(Refusal("the entry lacks " + ", ".join(missing), ("R-11.1",)))
    items = entry.get("data_items") or []
    if not items:
        problems.append(Refusal("the entry lists no data items (数据项)", ("R-11.1",)))
    else:
        names = [i["name"] for i in items]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            problems.append(Refusal(f"data items listed twice: {', '.join(dup)}", ("R-11.1",)))
        bad_types = sorted({i["type"] for i in items if i["type"] not in ITEM_TYPES})
        if bad_types:
            problems.append(Refusal(f"unknown data item types {', '.join(bad_types)}; use one of "
                                    f"{', '.join(ITEM_TYPES)}", ("R-11.1",)))
        subject = [i["name"] for i in items if i.get("subject_id")]
        if len(subject) != 1:
            problems.append(Refusal("exactly one data item must be marked as the subject identifier "
                                    f"(subject_id: true), found {len(subject)}", ("R-11.1",)))
    if not _blank(entry.get("update_cycle")) and entry["update_cycle"] not in UPDATE_CYCLES:
        problems.append(Refusal(f"update cycle {entry['update_cycle']!r} is not one of {', '.join(UPDATE_CYCLES)}",
                                ("R-11.1",)))
    return problems


def check_provider(submitter: str, entry: Mapping[str, Any], departments: Mapping[str, Department]) -> list[Refusal]:
    """R-12.1: each department catalogs its own resources; R-11.1: the provider is a registered department."""
    problems: list[Refusal] = []
    provider = entry.get("provider")
    if provider and provider != submitter:
        problems.append(Refusal(f"{submitter} cannot submit an entry for {provider}: each department catalogs its "
                                "own resources", ("R-12.1",)))
    if provider and provider not in departments:
        problems.append(Refusal(f"provider {provider} is not a department registered on the bus", ("R-11.1",)))
    return problems


def check_share_attribute(entry: Mapping[str, Any]) -> list[Refusal]:
    """R-23.1: unconditional, conditional or none; R-24.1: conditional and none cite a basis (sharing is the
    rule); R-11.1: conditional names its conditions."""
    problems: list[Refusal] = []
    share = entry.get("share_attribute")
    if not _blank(share) and share not in SHARE_ATTRIBUTES:
        problems.append(Refusal(f"share attribute {share!r} is not one of unconditional (无条件共享), conditional "
                                "(有条件共享), none (不予共享)", ("R-23.1",)))
    if share in ("conditional", "none") and _blank(entry.get("share_basis")):
        problems.append(Refusal(f"a {share} share attribute needs a cited legal or policy basis (share_basis): "
                                "sharing is the rule, not sharing the exception", ("R-24.1",)))
    if share == "conditional" and _blank(entry.get("share_conditions")):
        problems.append(Refusal("a conditional share attribute needs its share conditions", ("R-11.1",)))
    return problems


def check_open_treatments(entry: Mapping[str, Any]) -> list[Refusal]:
    """R-29.1: an open resource declares how each personal item is desensitized; every declaration fits its item."""
    from streams.rules.desensitize import treatment_problem

    opened = entry.get("open_attribute") in ("unconditional", "conditional")
    problems = (treatment_problem(i, opened) for i in entry.get("data_items") or [] if not i.get("subject_id"))
    return [Refusal(p, ("R-29.1",)) for p in problems if p]


def check_open_attribute(entry: Mapping[str, Any]) -> list[Refusal]:
    """R-30.1: unconditional, conditional or not open; conditional and not open cite a basis."""
    problems: list[Refusal] = []
    opened = entry.get("open_attribute")
    if not _blank(opened) and opened not in OPEN_ATTRIBUTES:
        problems.append(Refusal(f"open attribute {opened!r} is not one of unconditional (无条件开放), conditional "
                                "(有条件开放), not_open (不予开放)", ("R-30.1",)))
    if opened in ("conditional", "not_open") and _blank(entry.get("open_basis")):
        problems.append(Refusal(f"a {opened} open attribute needs a cited basis (open_basis)", ("R-30.1",)))
    return problems


def check_base_database(entry: Mapping[str, Any], departments: Mapping[str, Department]) -> list[Refusal]:
    """R-15.1: a base database is catalogued by its lead department; R-24.2: its basic items are shared
    unconditionally."""
    base = entry.get("base_database")
    if base is None:
        return []
    if base not in BASE_DATABASES:
        return [Refusal(f"base database {base!r} is not one of {', '.join(BASE_DATABASES)}", ("R-15.1",))]
    problems: list[Refusal] = []
    provider = entry.get("provider")
    lead = lead_department(base, departments)
    if provider != lead:
        problems.append(Refusal(f"the {base} base database is catalogued and maintained only by its lead "
                                f"department {lead}, not {provider}", ("R-15.1",)))
    basic = [i["name"] for i in entry.get("data_items") or [] if i.get("basic")]
    if basic and entry.get("share_attribute") != "unconditional":
        problems.append(Refusal(f"basic information items of the {base} base database ({', '.join(basic)}) are "
                                "always shared unconditionally", ("R-24.2",)))
    return problems


def check_system_registered(entry: Mapping[str, Any], systems: Mapping[str, Mapping[str, Any]]) -> list[Refusal]:
    """R-13.2: the information system an entry names is registered, to its provider, before approval."""
    system = entry.get("system_code")
    if _blank(system):
        return []
    reg = systems.get(system)
    if reg is None:
        return [Refusal(f"information system {system} is not registered: register the system with its share/open "
                        "interfaces before its catalog is approved", ("R-13.2",))]
    if reg["department"] != entry.get("provider"):
        return [Refusal(f"information system {system} is registered to {reg['department']}, not "
                        f"{entry.get('provider')}", ("R-13.2",))]
    return []


def lead_department(base_database: str, departments: Mapping[str, Department]) -> str | None:
    for d in departments.values():
        if d.base_database == base_database and d.level == "city":
            return d.code
    return None


def reviewer_for(department: Department, departments: Mapping[str, Department]) -> str:
    """The authority that reviews a department's catalog: its county's, or the city's (R-12.1)."""
    level = department.county if department.level == "county" else None
    for d in departments.values():
        if d.kind == "authority" and d.county == level and (level is not None or d.level == "city"):
            return d.code
    raise LookupError(f"no authority registered for {department.code}")


def check_review(reviewer: str, decision: str, reason: str | None, expected_reviewer: str) -> list[Refusal]:
    problems = []
    if reviewer != expected_reviewer:
        problems.append(Refusal(f"{reviewer} cannot review this submission: it is for {expected_reviewer}, "
                                "the authority of the submitting department's level", ("R-12.1",)))
    if decision not in ("approve", "reject"):
        problems.append(Refusal(f"decision {decision!r} is neither approve nor reject", ("R-12.1",)))
    if decision == "reject" and _blank(reason):
        problems.append(Refusal("a rejection states its reason", ("R-12.1",)))
    return problems


def update_due(change_date: date, calendar: WorkCalendar) -> Deadline:
    """When the catalog update after a change is due (R-14.1)."""
    return statutory_due("catalog_update", change_date, calendar)


def check_system(reg: Mapping[str, Any], departments: Mapping[str, Department],
                 systems: Mapping[str, Mapping[str, Any]]) -> list[Refusal]:
    problems = []
    if reg["department"] not in departments:
        problems.append(Refusal(f"{reg['department']} is not a department registered on the bus", ("R-13.2",)))
    if reg["stage"] not in ("registered", "accepted"):
        problems.append(Refusal(f"stage {reg['stage']!r} is neither registered nor accepted", ("R-13.2",)))
    known = systems.get(reg["system_code"])
    if known is not None and known["department"] != reg["department"]:
        problems.append(Refusal(f"system {reg['system_code']} belongs to {known['department']}", ("R-13.2",)))
    if reg["stage"] == "registered" and not reg.get("interfaces"):
        problems.append(Refusal("a new system registers its share/open interfaces before approval", ("R-13.2",)))
    if reg["stage"] == "accepted":
        if known is None:
            problems.append(Refusal(f"system {reg['system_code']} was never registered before approval; "
                                    "register it with its interfaces first", ("R-13.2",)))
        if not reg.get("resource_codes"):
            problems.append(Refusal("on acceptance a system registers its data resources (resource_codes)",
                                    ("R-13.2",)))
    for i in reg.get("interfaces") or []:
        if i["kind"] not in ("share", "open"):
            problems.append(Refusal(f"interface {i['name']}: kind {i['kind']!r} is neither share nor open",
                                    ("R-13.2",)))
    return problems


def check_demand_list(dl: Mapping[str, Any], departments: Mapping[str, Department]) -> list[Refusal]:
    problems = []
    if dl["submitter"] not in departments:
        problems.append(Refusal(f"{dl['submitter']} is not a department registered on the bus", ("R-12.1",)))
    if not dl["items"]:
        problems.append(Refusal("the demand list names no resource", ("R-12.1",)))
    for n, item in enumerate(dl["items"], 1):
        if _blank(item.get("purpose")):
            problems.append(Refusal(f"demand {n} ({item.get('name')}) states no purpose", ("R-12.1",)))
        if item.get("provider") and item["provider"] not in departments:
            problems.append(Refusal(f"demand {n}: provider {item['provider']} is not on the bus", ("R-12.1",)))
    return problems


def responsibility_lists(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Each provider's collection responsibility list, from the approved catalog (R-13.1)."""
    lists: dict[str, list[dict[str, str]]] = defaultdict(list)
    for e in entries:
        content = e["entry"]
        lists[content["provider"]].append({
            "resource_code": content["resource_code"], "name": content["name"],
            "update_cycle": content["update_cycle"], "system_code": content["system_code"],
        })
    return {dept: sorted(rs, key=lambda r: r["resource_code"]) for dept, rs in lists.items()}


def normalise_attributes(entry: dict[str, Any]) -> dict[str, Any]:
    """Accept the Chinese attribute words of the measures in submission files."""
    for field in ("share_attribute", "open_attribute"):
        v = entry.get(field)
        if isinstance(v, str) and v.strip() in ATTRIBUTE_WORDS:
            entry[field] = ATTRIBUTE_WORDS[v.strip()]
    return entry


def check_submission(sub: Mapping[str, Any], existing: Mapping[str, Any] | None, received_on: date,
                     calendar: WorkCalendar) -> tuple[list[Refusal], Deadline | None, bool]:
    """R-12.1: a new entry is not yet in the catalog, an update is; R-14.1: an update names the change of law,
    function or system it follows. Returns what is wrong and, for an update, when it was due and whether
    it came late."""
    code = sub["entry"]["resource_code"]
    problems: list[Refusal] = []
    due = None
    if sub["kind"] == "update":
        if existing is None:
            problems.append(Refusal(f"{code} is not in the approved catalog; submit it as a new entry", ("R-12.1",)))
        if not sub.get("change_date"):
            problems.append(Refusal("an update names the date of the change of law, function or system "
                                    "it follows (change_date)", ("R-14.1",)))
        else:
            try:
                due = update_due(date.fromisoformat(sub["change_date"]), calendar)
            except ValueError:
                problems.append(Refusal(f"change_date {sub['change_date']!r} is not a date YYYY-MM-DD",
                                        ("R-14.1",)))
    elif sub["kind"] == "new":
        if existing is not None:
            problems.append(Refusal(f"{code} is already in the catalog; submit an update", ("R-12.1",)))
    else:
        problems.append(Refusal(f"kind {sub['kind']!r} is neither new nor update", ("R-12.1",)))
    return problems, due, due is not None and received_on > due.due


def check_review_target(submission_id: str, pending: Mapping[str, Any] | None) -> Refusal | None:
    """R-12.1: only a submission awaiting review can be reviewed, once."""
    if pending is None:
        return Refusal(f"cannot review {submission_id}: no such submission", ("R-12.1",))
    if pending["status"] != "pending_review":
        return Refusal(f"cannot review {submission_id}: the submission is already {pending['status']}", ("R-12.1",))
    return None


def approve(entry: Mapping[str, Any], previous: Mapping[str, Any] | None, department: Department, *,
            approved_at: Any, approved_by: str, submission_id: str) -> dict[str, Any]:
    """R-12.1: the approved entry as it enters the city catalog (and its county's), one version after the last."""
    return {
        "resource_code": entry["resource_code"], "version": (previous["version"] + 1) if previous else 1,
        "level": department.level, "county": department.county, "approved_at": approved_at,
        "approved_by": approved_by, "submission_id": submission_id, "entry": dict(entry),
    }


def check_change(change: Mapping[str, Any], departments: Mapping[str, Department]) -> tuple[list[Refusal], date | None]:
    """R-14.1: a change of law, function or system of a registered department, on a date; returns the date."""
    problems: list[Refusal] = []
    if change["department"] not in departments:
        problems.append(Refusal(f"{change['department']} is not a department registered on the bus", ("R-14.1",)))
    if change["change_kind"] not in ("law", "function", "system"):
        problems.append(Refusal(f"change kind {change['change_kind']!r} is not law, function or system", ("R-14.1",)))
    try:
        changed_on = date.fromisoformat(change["change_date"])
    except ValueError:
        problems.append(Refusal(f"change_date {change['change_date']!r} is not a date YYYY-MM-DD", ("R-14.1",)))
        changed_on = None
    return problems, changed_on
