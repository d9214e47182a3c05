"""Citizens' and departments' cases as pure rules: verification of a datum (R-19.1, R-19.2), objections to a datum
(R-41.1), objections to the open catalog (R-31.1) and conditional open requests (R-32.1).

A case is a plain dict (the case agent keeps it as JSON). `open_case` and `take_step` check an input against the
case and the registries and return a `Transition`: the case as it now is, what to say about it, the deadline
commands to send, and how the flags of the datum change. A refused input raises a `Refusal` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.rules.deadlines import HEAD_RULE, PROCESSES, statutory_due
from streams.rules.identifiers import subject_problem
from streams.rules.refusals import Refusal
from streams.rules.workcalendar import WorkCalendar
from topics.departments import Department

CASE_TYPES = ("verification", "objection", "open_catalog_objection", "open_request")
RULES = {"verification": "R-19.1", "objection": "R-41.1", "open_catalog_objection": "R-31.1",
         "open_request": "R-32.1"}
WHAT = {"verification": "verification", "objection": "objection",
        "open_catalog_objection": "objection to the open catalog", "open_request": "open request"}
# what an answer or decision may say, by case type
OUTCOMES = {"verification": ("confirmed", "corrected"), "objection": ("confirmed", "corrected"),
            "open_catalog_objection": ("accepted", "rejected"), "open_request": ("approved", "refused")}
USES = ("public_interest_research", "commercial")
FLAG_OF = {"verification": "under_verification", "objection": "objected"}  # what feeds show while a case is open


@dataclass
class DeadlineCommand:
    action: str  # start | answer | extend
    deadline_id: str
    case_type: str | None = None
    party: str | None = None
    received_on: date | None = None
    extension_days: int | None = None
    approved_by: str | None = None


@dataclass
class Transition:
    case: dict[str, Any]
    step: str
    message: str
    rule_ids: list[str]
    commands: list[DeadlineCommand] = field(default_factory=list)
    flag: bool | None = None  # True: the datum is flagged by this case from now; False: no longer
    correct: bool = False  # the datum was found wrong: whoever received it is owed the correction
    grant: dict[str, Any] | None = None  # an approved open request: what the party now receives

    @property
    def deadline(self) -> dict[str, Any] | None:
        return self.case.get("deadline")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def party_problem(party_id: str, today: date | None = None) -> str | None:
    """A party that is not a department is identified by a valid resident identity number or unified social
    credit code (R-17.2); None when it is."""
    return subject_problem(party_id, today)


def party_kind(party_id: str) -> str:
    return "resident" if party_id[:17].isdigit() and party_id[17:] in "0123456789X" else "organisation"


def check_registration(rec: Mapping[str, Any], parties: Mapping[str, Any], departments: Mapping[str, Department],
                       today: date | None = None) -> list[Refusal]:
    problems = []
    party_id = rec["party_id"]
    if party_id in departments:
        problems.append(Refusal(f"{party_id} is a department; departments act under their own code", ("R-17.2",)))
    else:
        problem = party_problem(party_id, today)
        if problem:
            problems.append(Refusal(f"a party is registered under a valid resident identity number or unified "
                                    f"social credit code: {problem}", ("R-17.2",)))
    if _blank(rec["name"]):
        problems.append(Refusal("a party is registered with its name", ("R-17.2",)))
    if party_id in parties:
        problems.append(Refusal(f"{party_id} is already registered (as {parties[party_id]['name']})", ("R-17.2",)))
    return problems


def _requester(requester: str, parties: Mapping[str, Any], departments: Mapping[str, Department],
               rule: str) -> Refusal | None:
    if requester in departments or requester in parties:
        return None
    problem = party_problem(requester)
    if problem:
        return Refusal(f"{requester!r} is neither a department nor a registered party: {problem}", (rule, "R-17.2"))
    return Refusal(f"{requester} is not registered: a resident or organisation registers first "
                   "(`govbus party register`)", (rule,))


def data_items(entry: Mapping[str, Any]) -> list[str]:
    return [i["name"] for i in entry["entry"]["data_items"] if not i.get("subject_id")]


def check_opening(rec: Mapping[str, Any], entry: Mapping[str, Any] | None, parties: Mapping[str, Any],
                  departments: Mapping[str, Department], today: date | None = None) -> list[Refusal]:
    """Everything wrong with a new case, in one list (empty: it may be opened)."""
    kind = rec["case_type"]
    if kind not in CASE_TYPES:
        return [Refusal(f"case type {kind!r} is not one of {', '.join(CASE_TYPES)}")]
    rule = RULES[kind]
    problems = []
    refused = _requester(rec["requester"], parties, departments, rule)
    if refused:
        problems.append(refused)
    if _blank(rec["reason"]):
        problems.append(Refusal(f"a {WHAT[kind]} says what it is about (its reason)", (rule,)))
    if entry is None:
        problems.append(Refusal(f"{rec['resource_code']} is not in the approved catalog", (rule, "R-10.1")))
        return problems
    content = entry["entry"]
    if rec["requester"] == content["provider"] and kind != "objection":
        problems.append(Refusal(f"{rec['requester']} provides {rec['resource_code']} itself", (rule,)))
    items = list(rec["items"] or ())
    unknown = sorted(set(items) - set(data_items(entry)))
    if unknown:
        problems.append(Refusal(f"{', '.join(unknown)} are not data items of {rec['resource_code']}; it has "
                                f"{', '.join(data_items(entry))}", (rule,)))
    if kind in ("verification", "objection"):
        subject = rec.get("subject_id")
        if _blank(subject):
            problems.append(Refusal(f"a {WHAT[kind]} names the subject the datum is about", (rule,)))
        else:
            problem = subject_problem(subject, today)
            if problem:
                problems.append(Refusal(f"subject {problem}", (rule, "R-17.2")))
        if not items:
            problems.append(Refusal(f"a {WHAT[kind]} names the data items it is about", (rule,)))
    if kind == "open_request":
        party = parties[rec["requester"]] if rec["requester"] in parties else None
        if rec["requester"] in departments:
            problems.append(Refusal("departments receive data by sharing (Ch. 4: `govbus share request`); open "
                                    "requests are for residents, companies and research bodies", (rule,)))
        elif party is not None and not party.get("authenticated"):
            problems.append(Refusal(f"{rec['requester']} has no credentials yet: open data goes to authenticated "
                                    "requesters only (`govbus party credentials`)", (rule, "R-32.3")))
        opened = content["open_attribute"]
        if opened == "unconditional":
            problems.append(Refusal(f"{rec['resource_code']} is open unconditionally: any registered requester "
                                    "receives it without a request", ("R-32.3",)))
        elif opened != "conditional":
            problems.append(Refusal(f"{rec['resource_code']} is not open ({content.get('open_basis')})",
                                    ("R-30.1",)))
        if not items:
            problems.append(Refusal("an open request names the data items it wants", (rule,)))
        use = rec.get("use")
        if use not in USES:
            problems.append(Refusal(f"an open request records its use: public_interest_research (research is "
                                    f"limited to public-interest activity) or commercial, not {use!r}", (rule,)))
        elif use == "commercial" and _blank(rec.get("award")):
            problems.append(Refusal("commercial use of open data rests on a competitive award: name it (--award)",
                                    (rule,)))
    return problems


def _deadline(case_type: str, case_id: str, party: str, received_on: date, calendar: WorkCalendar) -> dict:
    due = statutory_due(case_type, received_on, calendar)
    return {"deadline_id": f"{case_type}:{case_id}", "case_type": case_type, "party": party,
            "received_on": received_on.isoformat(), "due_on": due.due.isoformat(), "provisional": due.provisional,
            "extended_by": 0}


def _start(d: dict) -> DeadlineCommand:
    return DeadlineCommand("start", d["deadline_id"], d["case_type"], d["party"], date.fromisoformat(d["received_on"]))


def authority_of(provider: Department, departments: Mapping[str, Department]) -> str:
    from streams.rules.catalog import reviewer_for

    return reviewer_for(provider, departments)


def open_case(rec: Mapping[str, Any], entry: Mapping[str, Any], departments: Mapping[str, Department],
              received_on: date, calendar: WorkCalendar) -> Transition:
    """A new case (checked with `check_opening` first): who must act first, and by when."""
    kind, case_id = rec["case_type"], rec["event_id"]
    provider = entry["entry"]["provider"]
    case = {"case_id": case_id, "case_type": kind, "requester": rec["requester"], "person": rec.get("person"),
            "resource_code": rec["resource_code"], "subject_id": rec.get("subject_id"),
            "items": sorted(rec["items"] or ()), "reason": rec["reason"], "use": rec.get("use"),
            "award": rec.get("award"), "provider": provider, "received_on": received_on.isoformat(),
            "status": "open", "deadlines": []}
    if kind == "objection":
        authority = authority_of(departments[provider], departments)
        case.update(authority=authority, status="received")
        d = _deadline("objection_mark", case_id, authority, received_on, calendar)
        message = f"objection received; {authority} marks the datum as objected by {d['due_on']}"
    else:
        d = _deadline(kind, case_id, provider, received_on, calendar)
        message = {
            "verification": f"{provider} verifies {', '.join(case['items'])} of {case['subject_id']} in "
                            f"{case['resource_code']} by {d['due_on']}; until then feeds flag it as under "
                            "verification, and deliveries go on",
            "open_catalog_objection": f"{provider} answers the objection to the open catalog by {d['due_on']}",
            "open_request": f"{provider} answers the open request by {d['due_on']}",
        }[kind]
    case["deadline"] = d
    case["deadlines"].append(d["deadline_id"])
    flag = True if kind == "verification" else None  # an objection flags its datum once the authority marks it
    return Transition(case, "opened", message, [RULES[kind]], [_start(d)], flag=flag)


def _must_be(case: Mapping[str, Any], actor: str, who: str, what: str) -> None:
    if actor != who:
        raise Refusal(f"{what} of case {case['case_id']} is for {who}, not {actor}", (RULES[case["case_type"]],))


def _close(case: dict) -> list[DeadlineCommand]:
    d = case.get("deadline")
    case["deadline"] = None
    return [DeadlineCommand("answer", d["deadline_id"])] if d else []


def take_step(case: Mapping[str, Any] | None, rec: Mapping[str, Any], departments: Mapping[str, Department],
              received_on: date, calendar: WorkCalendar) -> Transition:
    """One step of an open case; raises `Refusal` (and changes nothing) when the step does not fit it."""
    if case is None:
        raise Refusal(f"there is no case {rec['case_id']}")
    case = {**case, "deadlines": list(case["deadlines"])}
    kind, action, actor = case["case_type"], rec["action"], rec["actor"]
    rule = RULES[kind]
    if _blank(rec.get("person")):
        raise Refusal("a step of a case names the person who acts", (rule,))
    if case["status"] not in ("open", "received", "marked", "forwarded"):
        raise Refusal(f"case {case['case_id']} is closed ({case['status']}); nothing more is done on it", (rule,))
    if action == "extend":
        return _extend(case, rec, departments, calendar)
    if kind == "objection":
        return _objection_step(case, rec, departments, received_on, calendar)
    if action != "answer":
        raise Refusal(f"a {WHAT[kind]} is answered by its provider (or extended); {action!r} does not apply",
                      (rule,))
    _must_be(case, actor, case["provider"], "the answer")
    outcome = rec.get("outcome")
    if outcome not in OUTCOMES[kind]:
        raise Refusal(f"the answer to a {WHAT[kind]} is {' or '.join(OUTCOMES[kind])}, not {outcome!r}", (rule,))
    if outcome in ("corrected", "accepted", "rejected", "refused") and _blank(rec.get("reason")):
        raise Refusal(f"an answer that the {WHAT[kind]} is {outcome} says why", (rule,))
    if outcome == "refused" and _blank(rec.get("basis")):
        raise Refusal("a refused open request gives its reason and its basis", (rule,))
    commands = _close(case)
    case.update(status=outcome, outcome=outcome, decided_by=f"{actor} ({rec['person']})", answer=rec.get("reason"))
    who = f"{actor} ({rec['person']})"
    if kind == "verification":
        message = (f"verified by {who}: the datum is {outcome}" + (f": {rec['reason']}" if rec.get("reason") else "")
                   + ("; the corrected datum goes to every department that received the old value"
                      if outcome == "corrected" else ""))
        return Transition(case, "answered", message, ["R-19.1", "R-19.2"], commands, flag=False,
                          correct=outcome == "corrected")
    if kind == "open_catalog_objection":
        authority = authority_of(departments[case["provider"]], departments)
        message = (f"{who} accepts the objection: {rec['reason']}; the open catalog changes through {authority}"
                   if outcome == "accepted" else f"{who} rejects the objection: {rec['reason']}")
        if outcome == "accepted":
            case["authority"] = authority
        return Transition(case, "answered", message, [rule], commands)
    if outcome == "approved":
        grant = open_grant(case, who, rec["occurred_at"])
        case["grant_id"] = grant["grant_id"]
        return Transition(case, "answered", f"{who} approves the open request: {case['requester']} receives "
                          f"{', '.join(case['items'])} of {case['resource_code']}, desensitized, on its open feed",
                          [rule, "R-29.1"], commands, grant=grant)
    return Transition(case, "answered", f"{who} refuses the open request: {rec['reason']} (basis: {rec['basis']})",
                      [rule], commands)


def open_grant(case: Mapping[str, Any], granted_by: str, granted_at: Any) -> dict[str, Any]:
    """What an approved open request gives its party: exactly the items asked for, of that resource (R-32.1)."""
    return {"grant_id": f"open:{case['case_id']}", "party": case["requester"], "resource_code": case["resource_code"],
            "items": sorted(case["items"]), "purpose": case["reason"], "use": case["use"], "award": case["award"],
            "granted_by": granted_by, "granted_at": granted_at, "case_id": case["case_id"], "revoked": False}


def _objection_step(case: dict, rec: Mapping[str, Any], departments: Mapping[str, Department], received_on: date,
                    calendar: WorkCalendar) -> Transition:
    """R-41.1: the authority marks within 3 working days; decides within 10 if the datum is its to correct, else
    forwards within 5 and the department decides within 5 of its receipt; the objector is told the outcome."""
    action, actor, status, authority = rec["action"], rec["actor"], case["status"], case["authority"]
    who = f"{actor} ({rec['person']})"
    received = date.fromisoformat(case["received_on"])
    if action == "mark":
        if status != "received":
            raise Refusal(f"objection {case['case_id']} is already marked", ("R-41.1",))
        _must_be(case, actor, authority, "marking")
        own = rec.get("outcome") == "own"
        commands = _close(case)
        d = _deadline("objection_decide" if own else "objection_forward", case["case_id"], authority, received,
                      calendar)
        case.update(status="marked", scope="own" if own else "forward", deadline=d)
        case["deadlines"].append(d["deadline_id"])
        message = (f"{who} marks the datum as objected; feeds flag it until the objection is decided; "
                   + (f"{authority} decides it by {d['due_on']}" if own
                      else f"{authority} forwards it to the department that decides by {d['due_on']}"))
        return Transition(case, "marked", message, ["R-41.1"], [*commands, _start(d)], flag=True)
    if action == "forward":
        if status != "marked" or case.get("scope") != "forward":
            raise Refusal(f"objection {case['case_id']} is {status}"
                          + (" in the authority's own scope: it decides, not forwards" if status == "marked" else
                             ": it is forwarded once, after it is marked"), ("R-41.1",))
        _must_be(case, actor, authority, "forwarding")
        to = rec.get("to_department") or case["provider"]
        if to not in departments or to == authority:
            raise Refusal(f"an objection is forwarded to the department whose datum it is, not {to!r}", ("R-41.1",))
        commands = _close(case)
        d = _deadline("objection_forwarded_decide", case["case_id"], to, received_on, calendar)
        case.update(status="forwarded", decider=to, deadline=d)
        case["deadlines"].append(d["deadline_id"])
        return Transition(case, "forwarded", f"{who} forwards the objection to {to}, who decides by {d['due_on']} "
                          "and reports back", ["R-41.1"], [*commands, _start(d)])
    if action != "decide":
        raise Refusal(f"{action!r} is not a step of an objection: mark, forward, decide, in that order", ("R-41.1",))
    if status == "received":
        raise Refusal(f"objection {case['case_id']} is not marked yet: {authority} marks it first", ("R-41.1",))
    decider = authority if status == "marked" else case["decider"]
    if status == "marked" and case.get("scope") == "forward":
        raise Refusal(f"objection {case['case_id']} is to be forwarded by {authority} to the department that "
                      "decides it", ("R-41.1",))
    _must_be(case, actor, decider, "the decision")
    outcome = rec.get("outcome")
    if outcome not in OUTCOMES["objection"]:
        raise Refusal(f"an objection is decided as confirmed (the datum stands) or corrected, not {outcome!r}",
                      ("R-41.1",))
    if _blank(rec.get("reason")):
        raise Refusal("a decision on an objection says why", ("R-41.1",))
    commands = _close(case)
    case.update(status=outcome, outcome=outcome, decided_by=who, answer=rec["reason"])
    reported = f", reported back to {authority}" if decider != authority else ""
    message = (f"{who} decides the datum is {outcome}: {rec['reason']}{reported}; {case['requester']} is told "
               "the outcome" + ("; the corrected datum goes to every department that received the old value"
                                if outcome == "corrected" else ""))
    return Transition(case, "decided", message, ["R-41.1"], commands, flag=False, correct=outcome == "corrected")


def _extend(case: dict, rec: Mapping[str, Any], departments: Mapping[str, Department],
            calendar: WorkCalendar) -> Transition:
    """R-19.1, R-31.1, R-32.1: once, by at most the statute's days, approved by the acting party's head (R-7.1)."""
    d = case.get("deadline")
    if d is None:
        raise Refusal(f"case {case['case_id']} has no open deadline to extend", (RULES[case["case_type"]],))
    proc = PROCESSES[d["case_type"]]
    rule = proc.rule_id
    if proc.max_extension_days == 0:
        raise Refusal(f"the deadline for '{proc.description}' cannot be extended: {rule} sets {proc.days} working "
                      "days with no extension", (rule,))
    _must_be(case, rec["actor"], d["party"], "an extension")
    if d["extended_by"]:
        raise Refusal(f"the deadline of case {case['case_id']} was already extended by {d['extended_by']} working "
                      f"days; {rule} allows one extension only", (rule,))
    days = rec.get("extension_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= proc.max_extension_days:
        raise Refusal(f"an extension for '{proc.description}' is 1 to {proc.max_extension_days} working days "
                      f"({rule}), not {days!r}", (rule,))
    dept = departments.get(d["party"])
    head = dept.head if dept else None
    if not head or (rec.get("approved_by") or "").strip() != head:
        raise Refusal(f"an extension must be approved by the principal head of {d['party']}"
                      + (f", {head}; {rec.get('approved_by')!r} is not the registered head" if head else
                         ", and it has none registered"), (HEAD_RULE, rule))
    due = calendar.add_working_days(date.fromisoformat(d["due_on"]), days)
    d = {**d, "due_on": due.due.isoformat(), "provisional": d["provisional"] or due.provisional, "extended_by": days}
    case["deadline"] = d
    cmd = DeadlineCommand("extend", d["deadline_id"], extension_days=days, approved_by=head)
    return Transition(case, "extended", f"extended by {days} working days with the approval of {head}: now due "
                      f"from {d['party']} by {d['due_on']}", [HEAD_RULE, rule], [cmd])


def flags_record(resource_code: str, subject_id: str, flags: Mapping[str, str],
                 corrections: list[Mapping[str, str]]) -> dict[str, Any] | None:
    """The DatumFlags record of a datum: its open cases and the corrections owed on it (None: nothing)."""
    if not flags and not corrections:
        return None
    return {"resource_code": resource_code, "subject_id": subject_id,
            "flags": [{"case_id": c, "kind": k} for c, k in sorted(flags.items())],
            "corrections": [dict(c) for c in corrections]}


def owed_corrections(case_id: str, received: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """From who received the datum (oldest first, as the ledger lists it), each department once, with its latest
    delivery: the one the correction replaces, and the scope it came under."""
    latest: dict[str, Mapping[str, Any]] = {}
    for r in received:
        latest[r["subscriber"]] = r
    return [{"case_id": case_id, "department": dept, "corrects_event_id": r["event_id"], "grant_id": r["grant_id"]}
            for dept, r in sorted(latest.items())]


def mark_feeds(d: Mapping[str, Any], feeds: list[dict[str, Any]], marks: Mapping[str, Any] | None,
               correction_feed: Any) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The feed records of a publication as its datum's cases mark them: every record flagged with the open
    verifications and objections of the datum (R-19.2, R-41.1; a flag never holds a delivery back), and each
    department owed a correction sent it, marked as the correction of its earlier delivery, in the scope that
    delivery came under, whether or not it would receive the publication otherwise. Nobody else receives a
    correction. `correction_feed(department, grant_id)` makes the record of a department not among `feeds` (None
    when the scope of its earlier delivery is unknown). Returns the records and, per case, who was sent its
    correction."""
    if not marks:
        return feeds, {}
    flags = [f["kind"] for f in marks["flags"]]
    case_ids = [f["case_id"] for f in marks["flags"]]
    out = []
    for fed in feeds:
        out.append({**fed, "flags": list(flags), "case_ids": list(case_ids)})
    if marks["corrections"]:  # a publication of the datum passed the one-source check: it is its provider's
        by_department = {f["subscriber"]: i for i, f in enumerate(out)}
        sent: dict[str, list[str]] = {}
        for c in marks["corrections"]:
            i = by_department.get(c["department"])
            if i is None:
                fed = correction_feed(c["department"], c["grant_id"])
                if fed is None:
                    continue
                out.append({**fed, "flags": list(flags), "case_ids": list(case_ids)})
                i = by_department[c["department"]] = len(out) - 1
            fed = out[i]
            fed["flags"] = [*fed["flags"], "correction"]
            fed["case_ids"] = [*fed["case_ids"], c["case_id"]]
            fed["correction_of"] = c["corrects_event_id"]
            sent.setdefault(c["case_id"], []).append(c["department"])
        return out, sent
    return out, {}
