"""Rules of the catalog (Ch. 2 of the measures) as pure functions: is a submission acceptable,
who reviews it, is an update late, and what each department must collect.

Reasons are written for the department officer who reads them, with the rule ids they
were decided under.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from streams.rules.workcalendar import Deadline, WorkCalendar
from topics.departments import Department

SHARE_ATTRIBUTES = ("unconditional", "conditional", "none")
OPEN_ATTRIBUTES = ("unconditional", "conditional", "not_open")
BASE_DATABASES = ("population", "legal_entities", "geospatial", "e_licences")
ITEM_TYPES = ("string", "integer", "decimal", "date", "datetime", "boolean", "identifier")
UPDATE_CYCLES = ("realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "on_change")
UPDATE_DAYS = 15  # a department updates its entries within 15 working days of a change

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


@dataclass(frozen=True)
class Problem:
    reason: str
    rule_ids: tuple[str, ...]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def check_entry(submitter: str, entry: Mapping[str, Any], departments: Mapping[str, Department],
                systems: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """Every reason the entry cannot go to review; empty when it can."""
    problems: list[Problem] = []

    def refuse(reason: str, *rules: str) -> None:
        problems.append(Problem(reason, rules))

    if entry.get("classified"):
        refuse("classified (涉密) resources never enter the exchange: keep this resource off the bus", "R-3.1")
        return problems

    missing = [label for field, label in REQUIRED.items() if _blank(entry.get(field))]
    if missing:
        refuse("the entry lacks " + ", ".join(missing), "R-11.1")
    items = entry.get("data_items") or []
    if not items:
        refuse("the entry lists no data items (数据项)", "R-11.1")
    else:
        names = [i["name"] for i in items]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            refuse(f"data items listed twice: {', '.join(dup)}", "R-11.1")
        bad_types = sorted({i["type"] for i in items if i["type"] not in ITEM_TYPES})
        if bad_types:
            refuse(f"unknown data item types {', '.join(bad_types)}; use one of {', '.join(ITEM_TYPES)}", "R-11.1")
        subject = [i["name"] for i in items if i.get("subject_id")]
        if len(subject) != 1:
            refuse("exactly one data item must be marked as the subject identifier (subject_id: true), "
                   f"found {len(subject)}", "R-11.1")
    if not _blank(entry.get("update_cycle")) and entry["update_cycle"] not in UPDATE_CYCLES:
        refuse(f"update cycle {entry['update_cycle']!r} is not one of {', '.join(UPDATE_CYCLES)}", "R-11.1")

    provider = entry.get("provider")
    if provider and provider != submitter:
        refuse(f"{submitter} cannot submit an entry for {provider}: each department catalogs its own resources",
               "R-12.1")
    if provider and provider not in departments:
        refuse(f"provider {provider} is not a department registered on the bus", "R-11.1")

    share = entry.get("share_attribute")
    if not _blank(share) and share not in SHARE_ATTRIBUTES:
        refuse(f"share attribute {share!r} is not one of unconditional (无条件共享), conditional (有条件共享), "
               "none (不予共享)", "R-23.1")
    if share in ("conditional", "none") and _blank(entry.get("share_basis")):
        refuse(f"a {share} share attribute needs a cited legal or policy basis (share_basis): "
               "sharing is the rule, not sharing the exception", "R-24.1")
    if share == "conditional" and _blank(entry.get("share_conditions")):
        refuse("a conditional share attribute needs its share conditions", "R-11.1")

    opened = entry.get("open_attribute")
    if not _blank(opened) and opened not in OPEN_ATTRIBUTES:
        refuse(f"open attribute {opened!r} is not one of unconditional (无条件开放), conditional (有条件开放), "
               "not_open (不予开放)", "R-30.1")
    if opened in ("conditional", "not_open") and _blank(entry.get("open_basis")):
        refuse(f"a {opened} open attribute needs a cited basis (open_basis)", "R-30.1")

    base = entry.get("base_database")
    if base is not None:
        if base not in BASE_DATABASES:
            refuse(f"base database {base!r} is not one of {', '.join(BASE_DATABASES)}", "R-15.1")
        else:
            lead = lead_department(base, departments)
            if provider != lead:
                refuse(f"the {base} base database is catalogued and maintained only by its lead department "
                       f"{lead}, not {provider}", "R-15.1")
            basic = [i["name"] for i in items if i.get("basic")]
            if basic and share != "unconditional":
                refuse(f"basic information items of the {base} base database ({', '.join(basic)}) are always "
                       "shared unconditionally", "R-24.2")

    system = entry.get("system_code")
    if not _blank(system):
        reg = systems.get(system)
        if reg is None:
            refuse(f"information system {system} is not registered: register the system with its share/open "
                   "interfaces before its catalog is approved", "R-13.2")
        elif reg["department"] != provider:
            refuse(f"information system {system} is registered to {reg['department']}, not {provider}", "R-13.2")
    return problems


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


def check_review(reviewer: str, decision: str, reason: str | None, expected_reviewer: str) -> list[Problem]:
    problems = []
    if reviewer != expected_reviewer:
        problems.append(Problem(f"{reviewer} cannot review this submission: it is for {expected_reviewer}, "
                                "the authority of the submitting department's level", ("R-12.1",)))
    if decision not in ("approve", "reject"):
        problems.append(Problem(f"decision {decision!r} is neither approve nor reject", ("R-12.1",)))
    if decision == "reject" and _blank(reason):
        problems.append(Problem("a rejection states its reason", ("R-12.1",)))
    return problems


def update_due(change_date: date, calendar: WorkCalendar) -> Deadline:
    """When the catalog update after a change is due (R-14.1)."""
    return calendar.add_working_days(change_date, UPDATE_DAYS)


def is_late(received_on: date, change_date: date, calendar: WorkCalendar) -> tuple[bool, Deadline]:
    due = update_due(change_date, calendar)
    return received_on > due.due, due


def check_system(reg: Mapping[str, Any], departments: Mapping[str, Department],
                 systems: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    problems = []
    if reg["department"] not in departments:
        problems.append(Problem(f"{reg['department']} is not a department registered on the bus", ("R-13.2",)))
    if reg["stage"] not in ("registered", "accepted"):
        problems.append(Problem(f"stage {reg['stage']!r} is neither registered nor accepted", ("R-13.2",)))
    known = systems.get(reg["system_code"])
    if known is not None and known["department"] != reg["department"]:
        problems.append(Problem(f"system {reg['system_code']} belongs to {known['department']}", ("R-13.2",)))
    if reg["stage"] == "registered" and not reg.get("interfaces"):
        problems.append(Problem("a new system registers its share/open interfaces before approval", ("R-13.2",)))
    if reg["stage"] == "accepted":
        if known is None:
            problems.append(Problem(f"system {reg['system_code']} was never registered before approval; "
                                    "register it with its interfaces first", ("R-13.2",)))
        if not reg.get("resource_codes"):
            problems.append(Problem("on acceptance a system registers its data resources (resource_codes)",
                                    ("R-13.2",)))
    for i in reg.get("interfaces") or []:
        if i["kind"] not in ("share", "open"):
            problems.append(Problem(f"interface {i['name']}: kind {i['kind']!r} is neither share nor open",
                                    ("R-13.2",)))
    return problems


def check_demand_list(dl: Mapping[str, Any], departments: Mapping[str, Department]) -> list[Problem]:
    problems = []
    if dl["submitter"] not in departments:
        problems.append(Problem(f"{dl['submitter']} is not a department registered on the bus", ("R-12.1",)))
    if not dl["items"]:
        problems.append(Problem("the demand list names no resource", ("R-12.1",)))
    for n, item in enumerate(dl["items"], 1):
        if _blank(item.get("purpose")):
            problems.append(Problem(f"demand {n} ({item.get('name')}) states no purpose", ("R-12.1",)))
        if item.get("provider") and item["provider"] not in departments:
            problems.append(Problem(f"demand {n}: provider {item['provider']} is not on the bus", ("R-12.1",)))
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
