"""The catalog agent: submissions, reviews, demand lists, system registrations and changes, judged by the
rules in streams/rules/catalog.py."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from streams.agentstate import AgentState, serve_inbox
from streams.app import CODEC, DEPARTMENTS, PREFIX, app, calendar, topic
from streams.rules import catalog as rules
from streams.rules.deadlines import command_record, statutory_due
from streams.rules.opening import is_open
from streams.rules.refusals import Refusal
from topics import registry

log = logging.getLogger("govbus.catalog")

inbox_topic = topic(registry.CATALOG_INBOX)
catalog_topic = topic(registry.CATALOG)
decisions_topic = topic(registry.CATALOG_DECISIONS)
responsibilities_topic = topic(registry.RESPONSIBILITIES)
deadline_commands_topic = topic(registry.DEADLINE_COMMANDS)
open_catalog_topic = topic(registry.OPEN_CATALOG)

state = AgentState(app, "catalog_state", registry.name_of(registry.CATALOG_STATE, PREFIX),
                   (catalog_topic, decisions_topic, responsibilities_topic, deadline_commands_topic,
                    open_catalog_topic))
_get, _put, _emit = state.get, state.put, state.emit


def _decide(now: datetime, *, subject_kind: str, subject_id: str, department: str, status: str,
                  resource_code: str | None = None, problems: list[Refusal] = (), late: bool = False,
                  due_on: str | None = None, decided_by: str | None = None, reasons: list[str] | None = None,
                  rule_ids: list[str] | None = None) -> None:
    ids = sorted({r for p in problems for r in p.rule_ids} | set(rule_ids or ()))
    rec = {
        "event_id": f"{subject_kind}:{subject_id}:{status}", "occurred_at": now, "subject_kind": subject_kind,
        "subject_id": subject_id, "resource_code": resource_code, "department": department, "status": status,
        "reasons": reasons if reasons is not None else [p.reason for p in problems], "rule_ids": ids,
        "late": late, "due_on": due_on, "decided_by": decided_by,
    }
    _emit(decisions_topic, subject_id.encode(), CODEC.encode("govbus.catalog.CatalogDecision", rec))
    log.info("%s %s of %s: %s %s", subject_kind, subject_id, department, status, "; ".join(rec["reasons"]))


def _deadline(now: datetime, action: str, deadline_id: str, actor: str, **fields: Any) -> None:
    rec = command_record(now, action, deadline_id, actor, **fields)
    _emit(deadline_commands_topic, deadline_id.encode(), CODEC.encode("govbus.deadlines.DeadlineCommand", rec))


@app.agent(inbox_topic)
async def process_catalog(stream):
    """The catalog inbox, in order: each input to its handler below."""
    await serve_inbox(stream, state, HANDLERS, "catalog")


async def on_submission(rec: dict, received_on: date, now: datetime) -> None:
    """A catalog list entry submitted: checked (R-11.1, R-12.1, R-14.1) and queued for its authority's review."""
    entry = rules.normalise_attributes(dict(rec["entry"]))
    submitter, code, sub_id = rec["submitter"], entry["resource_code"], rec["event_id"]
    dept = DEPARTMENTS.get(submitter)
    if dept is None:
        _decide(now, subject_kind="entry", subject_id=sub_id, department=submitter, status="refused",
                resource_code=code, reasons=[f"{submitter} is not a department registered on the bus"],
                rule_ids=["R-12.1"])
        return
    problems, update_due, late = rules.check_submission({**rec, "entry": entry}, _get(f"entry:{code}"), received_on,
                                                  calendar)
    problems = rules.check_entry(submitter, entry, DEPARTMENTS, _systems()) + problems
    if problems:
        _decide(now, subject_kind="entry", subject_id=sub_id, department=submitter, status="refused",
                resource_code=code, problems=problems)
        _put(f"sub:{sub_id}", {"status": "refused"})
        return
    reviewer = rules.reviewer_for(dept, DEPARTMENTS)
    review_due = statutory_due("catalog_review", received_on, calendar)
    _put(f"sub:{sub_id}", {"status": "pending_review", "submission": {**rec, "entry": entry},
                           "reviewer": reviewer, "received_on": received_on, "late": late})
    _decide(now, subject_kind="entry", subject_id=sub_id, department=submitter, status="pending_review",
            resource_code=code, late=late, due_on=str(review_due),
            reasons=[f"awaiting review by {reviewer}, due {review_due}"]
            + ([f"late: the update was due {update_due} (15 working days after the change)"] if late else []),
            rule_ids=["R-12.1", "R-14.1"])
    _deadline(now, "start", f"catalog_review:{sub_id}", submitter, case_type="catalog_review",
              case_id=sub_id, party=reviewer, received_on=received_on.isoformat())
    if rec["kind"] == "update":
        for change_id in _get(f"changes:{submitter}") or []:
            _deadline(now, "answer", f"catalog_update:{change_id}", submitter)
        _put(f"changes:{submitter}", [])


async def on_review(rec: dict, received_on: date, now: datetime) -> None:
    """The authority's review of a pending submission: an approved entry enters the catalog (R-12.1)."""
    sub_id, reviewer = rec["submission_id"], rec["reviewer"]
    sub = _get(f"sub:{sub_id}")
    refused = rules.check_review_target(sub_id, sub)
    if refused is not None:
        _decide(now, subject_kind="review", subject_id=rec["event_id"], department=reviewer,
                status="refused", problems=[refused])
        return
    problems = rules.check_review(reviewer, rec["decision"], rec.get("reason"), sub["reviewer"])
    submission = sub["submission"]
    entry, submitter = submission["entry"], submission["submitter"]
    code = entry["resource_code"]
    if problems:
        _decide(now, subject_kind="review", subject_id=rec["event_id"], department=reviewer,
                status="refused", resource_code=code, problems=problems)
        return
    who = f"{reviewer} ({rec['reviewer_person']})"
    _deadline(now, "answer", f"catalog_review:{sub_id}", reviewer)
    if rec["decision"] == "reject":
        _put(f"sub:{sub_id}", {**sub, "status": "rejected"})
        _decide(now, subject_kind="entry", subject_id=sub_id, department=submitter, status="rejected",
                resource_code=code, decided_by=who, reasons=[rec["reason"]], rule_ids=["R-12.1"],
                late=sub["late"])
        return
    previous = _get(f"entry:{code}")
    approved = rules.approve(entry, previous, DEPARTMENTS[submitter], approved_at=now,
                             approved_by=who, submission_id=sub_id)
    value = CODEC.encode("govbus.catalog.CatalogEntry", approved)
    _put(f"entry:{code}", approved)
    if is_open(approved):  # the open catalog as an event stream, for portals that harvest it
        _emit(open_catalog_topic, code.encode(), value)
    elif previous is not None and is_open(previous):
        _emit(open_catalog_topic, code.encode(), None)
    codes = set(_get("entries") or [])
    codes.add(code)
    _put("entries", sorted(codes))
    _put(f"sub:{sub_id}", {**sub, "status": "approved"})
    _emit(catalog_topic, code.encode(), value)
    _decide(now, subject_kind="entry", subject_id=sub_id, department=submitter, status="approved",
            resource_code=code, decided_by=who, reasons=[f"{code} v{approved['version']} is in the catalog"],
            rule_ids=["R-12.1"], late=sub["late"])
    _rederive_responsibilities(now)


def _rederive_responsibilities(now: datetime) -> None:
    """R-13.1: after each approval, every department's list is derived anew; changed ones are published."""
    entries = [_get(f"entry:{c}") for c in _get("entries") or []]
    lists = rules.responsibility_lists(entries)
    for dept in sorted(set(lists) | set(_get("responsible") or [])):
        resources = lists.get(dept, [])
        if _get(f"resp:{dept}") == resources:
            continue
        _put(f"resp:{dept}", resources)
        rec = {"event_id": f"resp:{dept}:{now.isoformat()}", "occurred_at": now, "department": dept,
               "resources": resources}
        _emit(responsibilities_topic, dept.encode(), CODEC.encode("govbus.catalog.ResponsibilityList", rec))
    _put("responsible", sorted(lists))


def _systems() -> dict[str, dict]:
    return {code: _get(f"sys:{code}") for code in _get("systems") or []}


async def on_system(rec: dict, received_on: date, now: datetime) -> None:
    """An information system registered with its share/open interfaces, or accepted (R-13.2)."""
    problems = rules.check_system(rec, DEPARTMENTS, _systems())
    if problems:
        _decide(now, subject_kind="system", subject_id=rec["event_id"], department=rec["department"],
                      status="refused", problems=problems)
        return
    _put(f"sys:{rec['system_code']}", {k: rec[k] for k in ("department", "system_code", "name", "stage",
                                                          "interfaces", "resource_codes")})
    codes = set(_get("systems") or [])
    codes.add(rec["system_code"])
    _put("systems", sorted(codes))
    _decide(now, subject_kind="system", subject_id=rec["event_id"], department=rec["department"],
                  status="accepted", reasons=[f"system {rec['system_code']} {rec['stage']}"], rule_ids=["R-13.2"])


async def on_demand_list(rec: dict, received_on: date, now: datetime) -> None:
    """A department's demand list: the resources it needs from others, each with its purpose (R-12.1)."""
    problems = rules.check_demand_list(rec, DEPARTMENTS)
    _decide(now, subject_kind="demand_list", subject_id=rec["event_id"], department=rec["submitter"],
                  status="refused" if problems else "accepted", problems=problems,
                  reasons=None if problems else [f"{len(rec['items'])} demands recorded"], rule_ids=["R-12.1"])


async def on_change(rec: dict, received_on: date, now: datetime) -> None:
    """A change of law, function or system: the department's catalog update is due in 15 working days (R-14.1)."""
    dept = rec["department"]
    problems, change_date = rules.check_change(rec, DEPARTMENTS)
    if problems:
        _decide(now, subject_kind="change", subject_id=rec["event_id"], department=dept, status="refused",
                problems=problems)
        return
    due = rules.update_due(change_date, calendar)
    open_changes = _get(f"changes:{dept}") or []
    _put(f"changes:{dept}", [*open_changes, rec["event_id"]])
    _deadline(now, "start", f"catalog_update:{rec['event_id']}", rec["reported_by"],
              case_type="catalog_update", case_id=rec["event_id"], party=dept, received_on=change_date.isoformat())
    _decide(now, subject_kind="change", subject_id=rec["event_id"], department=dept, status="accepted",
            due_on=str(due), reasons=[f"{dept} updates its catalog entries by {due}"], rule_ids=["R-14.1"])


HANDLERS = {
    "govbus.catalog.CatalogSubmission": on_submission,
    "govbus.catalog.CatalogReview": on_review,
    "govbus.catalog.DemandList": on_demand_list,
    "govbus.catalog.SystemRegistration": on_system,
    "govbus.catalog.CatalogChange": on_change,
}
