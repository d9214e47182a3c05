"""The case agent: registrations of parties, verifications, objections, objections to the open catalog and open
requests, judged by the rules in streams/rules/cases.py; each case's deadlines go to the deadline service, the
flags of its datum to the delivery stream, and what became of every input to the cases topic."""

from __future__ import annotations

import logging
from datetime import date, datetime

from streams.agentstate import AgentState, serve_inbox
from streams.app import CODEC, DEPARTMENTS, PREFIX, SETTINGS, app, calendar, catalog, topic
from streams.rules import cases as rules
from streams.rules.deadlines import command_record
from streams.rules.refusals import Refusal
from topics import registry

log = logging.getLogger("govbus.cases")
EVENT = "govbus.cases.CaseEvent"

inbox_topic = topic(registry.CASES_INBOX)
cases_topic = topic(registry.CASES)
flags_topic = topic(registry.CASE_FLAGS)
parties_topic = topic(registry.PARTIES)
open_grants_topic = topic(registry.OPEN_GRANTS)
deadline_commands_topic = topic(registry.DEADLINE_COMMANDS)
state = AgentState(app, "cases_state", registry.name_of(registry.CASES_STATE, PREFIX),
                   (cases_topic, flags_topic, parties_topic, open_grants_topic, deadline_commands_topic))


@app.agent(inbox_topic)
async def process_cases(stream):
    """The cases inbox, in order: each input to its handler below."""
    await serve_inbox(stream, state, HANDLERS, "cases")


def _say(now: datetime, source: dict, case: dict | None, step: str, message: str, rule_ids, *, actor: str,
         person: str | None = None, recipients: list[str] = (), case_id: str | None = None) -> None:
    case = case or {}
    d = case.get("deadline") or {}
    case_id = case_id or case.get("case_id") or source.get("case_id") or source["event_id"]
    rec = {"event_id": f"{source['event_id']}:{step}", "occurred_at": now, "case_id": case_id,
           "case_type": case.get("case_type"), "step": step, "status": case.get("status", "none"),
           "actor": actor, "person": person, "requester": case.get("requester"),
           "resource_code": case.get("resource_code"), "subject_id": case.get("subject_id"),
           "items": list(case.get("items") or ()), "message": message, "rule_ids": sorted(set(rule_ids)),
           "deadline_id": d.get("deadline_id"), "party": d.get("party"), "due_on": d.get("due_on"),
           "recipients": list(recipients), "source_event_id": source["event_id"]}
    state.emit(cases_topic, case_id.encode(), CODEC.encode(EVENT, rec))
    log.info("case %s %s: %s", case_id, step, message)


def _refuse(now: datetime, source: dict, case: dict | None, problems: list[Refusal], actor: str,
            case_id: str | None = None) -> None:
    _say(now, source, case, "refused", "; ".join(p.reason for p in problems),
         [r for p in problems for r in p.rule_ids], actor=actor, person=source.get("person"), case_id=case_id)


def _commands(now: datetime, t: rules.Transition, actor: str) -> None:
    for c in t.commands:
        fields = {k: v for k, v in (("case_type", c.case_type), ("case_id", t.case["case_id"] if c.action == "start"
                                                                  else None),
                                    ("party", c.party), ("extension_days", c.extension_days),
                                    ("approved_by", c.approved_by)) if v is not None}
        if c.received_on is not None:
            fields["received_on"] = c.received_on.isoformat()
        rec = command_record(now, c.action, c.deadline_id, actor, **fields)
        state.emit(deadline_commands_topic, c.deadline_id.encode(),
                   CODEC.encode("govbus.deadlines.DeadlineCommand", rec))


def _datum_key(case: dict) -> str:
    return f"{case['resource_code']}|{case['subject_id']}"


def _publish_flags(case: dict, datum: dict) -> None:
    key = _datum_key(case)
    state.put(f"datum:{key}", datum)
    rec = rules.flags_record(case["resource_code"], case["subject_id"], datum["flags"], datum["corrections"])
    state.emit(flags_topic, key.encode(), None if rec is None else CODEC.encode("govbus.cases.DatumFlags", rec))


def _datum(case: dict) -> dict:
    return state.get(f"datum:{_datum_key(case)}") or {"flags": {}, "corrections": []}


async def _received_old_value(case: dict) -> list[dict]:
    """Who the ledger says received the datum: each is owed the correction."""
    from consumers.queries import who_received

    rows = await who_received(SETTINGS.dsn, case["subject_id"], case["resource_code"])
    return [dict(r) for r in rows]


async def _apply(t: rules.Transition, now: datetime, source: dict, actor: str) -> None:
    case = t.case
    recipients: list[str] = []
    if t.flag is not None or t.correct:
        datum = _datum(case)
        if t.flag:
            datum["flags"][case["case_id"]] = rules.FLAG_OF[case["case_type"]]
        elif t.flag is False:
            datum["flags"].pop(case["case_id"], None)
        if t.correct:
            owed = rules.owed_corrections(case["case_id"], await _received_old_value(case))
            datum["corrections"] = [c for c in datum["corrections"] if c["case_id"] != case["case_id"]] + owed
            recipients = [c["department"] for c in owed]
            case["owed"] = recipients
        _publish_flags(case, datum)
    state.put(f"case:{case['case_id']}", case)
    _commands(now, t, actor)
    if t.grant is not None:
        state.emit(open_grants_topic, t.grant["grant_id"].encode(), CODEC.encode("govbus.open.OpenGrant", t.grant))
    message = t.message
    if t.correct:
        message += (f"; owed to {', '.join(recipients)}, sent with the provider's republication" if recipients
                    else "; nobody had received the old value")
    _say(now, source, case, t.step, message, t.rule_ids, actor=actor, person=source.get("person"),
         recipients=recipients)


class Parties:
    """The registered parties, as the rules look them up: one table entry each."""

    def __contains__(self, party_id: object) -> bool:
        return state.get(f"party:{party_id}") is not None

    def __getitem__(self, party_id: str) -> dict:
        party = state.get(f"party:{party_id}")
        if party is None:
            raise KeyError(party_id)
        return party


parties = Parties()


async def on_registration(rec: dict, received_on: date, now: datetime) -> None:
    """A resident or organisation registers as a party (R-17.2 for its identifier)."""
    problems = rules.check_registration(rec, parties, DEPARTMENTS, received_on)
    if problems:
        _refuse(now, rec, None, problems, rec["registered_by"], case_id=f"party:{rec['party_id']}")
        return
    party = {"party_id": rec["party_id"], "kind": rules.party_kind(rec["party_id"]), "name": rec["name"],
             "registered_at": now, "registered_by": rec["registered_by"]}
    state.put(f"party:{rec['party_id']}", party)
    state.emit(parties_topic, rec["party_id"].encode(), CODEC.encode("govbus.cases.Party", party))
    _say(now, rec, None, "registered", f"{rec['name']} registered as a party ({party['kind']})", ["R-17.2"],
         actor=rec["registered_by"], case_id=f"party:{rec['party_id']}")


async def on_credentials(rec: dict, received_on: date, now: datetime) -> None:
    """A registered party was issued its credentials and its open feed: it may now request open data (R-32.3)."""
    party = state.get(f"party:{rec['party_id']}")
    if party is None:
        _refuse(now, rec, None, [Refusal(f"{rec['party_id']} is not a registered party", ("R-32.3",))],
                rec["issued_by"], case_id=f"party:{rec['party_id']}")
        return
    state.put(f"party:{rec['party_id']}", {**party, "authenticated": True})
    _say(now, rec, None, "credentials", f"{party['name']} is an authenticated requester of open data", ["R-32.3"],
         actor=rec["issued_by"], case_id=f"party:{rec['party_id']}")


async def on_opening(rec: dict, received_on: date, now: datetime) -> None:
    """A verification, objection, objection to the open catalog or open request: checked, and its first
    deadline started."""
    entry = catalog.entries.get(rec["resource_code"])
    problems = rules.check_opening(rec, entry, parties, DEPARTMENTS, received_on)
    if problems:
        _refuse(now, rec, None, problems, rec["requester"])
        return
    await _apply(rules.open_case(rec, entry, DEPARTMENTS, received_on, calendar), now, rec, rec["requester"])


async def on_step(rec: dict, received_on: date, now: datetime) -> None:
    """A party acts on a case: mark, forward, answer, decide or extend."""
    case = state.get(f"case:{rec['case_id']}")
    try:
        t = rules.take_step(case, rec, DEPARTMENTS, received_on, calendar)
    except Refusal as refused:
        _refuse(now, rec, case, [refused], rec["actor"], case_id=rec["case_id"])
        return
    await _apply(t, now, rec, rec["actor"])


async def on_correction_sent(rec: dict, received_on: date, now: datetime) -> None:
    """The delivery stream sent the corrected datum to those owed it: recorded on the case, and no longer owed."""
    case = state.get(f"case:{rec['case_id']}")
    if case is None:
        log.warning("correction sent for unknown case %s", rec["case_id"])
        return
    datum = _datum(case)
    sent = set(rec["recipients"])
    datum["corrections"] = [c for c in datum["corrections"]
                            if not (c["case_id"] == case["case_id"] and c["department"] in sent)]
    _publish_flags(case, datum)
    case["corrected_to"] = sorted(set(case.get("corrected_to") or ()) | sent)
    state.put(f"case:{case['case_id']}", case)
    _say(now, rec, case, "correction_sent", f"the corrected datum ({rec['delivery_event_id']}) went to "
         f"{', '.join(sorted(sent))}, marked as the correction of what each had received", ["R-19.1"],
         actor="govbus", recipients=sorted(sent))


HANDLERS = {
    "govbus.cases.PartyRegistration": on_registration,
    "govbus.cases.PartyCredentials": on_credentials,
    "govbus.cases.CaseOpening": on_opening,
    "govbus.cases.CaseStep": on_step,
    "govbus.cases.CorrectionSent": on_correction_sent,
}
