"""Property-based tests of the case state machines as pure functions: the deadline engine under
random command sequences (with restarts from its compacted topic), and the sharing and catalog rules
under random and mutated records.

The sharing and catalog rules are only ever called by their agents with records the Avro codec has
decoded (streams/agentstate.py `serve_inbox`), so their untrusted input is "any record of the schema":
every generated record here goes through the codec first; the type and key errors the schema rules
out are not tested. Pure: no Kafka, no PostgreSQL, no subprocess.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ops.seeds import approved_entry
from schemas.codec import default_codec
from streams.rules import catalog as cat
from streams.rules import sharing
from streams.rules.deadlines import PROCESSES, ZONE, DeadlineEngine, DeadlineState
from streams.rules.refusals import Refusal
from streams.rules.workcalendar import WorkCalendar
from topics.departments import load

CODEC = default_codec()
DEPTS = load()
HEADS = {code: d.head for code, d in DEPTS.items()}
CAL = WorkCalendar()
RULE_ID = re.compile(r"^R-\d+\.\d+$")
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
STATE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# =========================================================================== the deadline engine

IDS = ["d0", "d1", "d2"]
UNKNOWN_ID = "never-started"
PARTIES = ["NJ-GA", "WY-MZ", "NJ-SJJ", "XX-NOPE"]  # the last is not on the bus
CASE_TYPES = [*PROCESSES, "verification", "open_request", "coffee_break"]  # extendable ones twice; one unknown
APPROVERS = ["head", " head ", "officer", "another head", ""]

OPS = st.one_of(
    st.tuples(st.just("start"), st.sampled_from(IDS), st.sampled_from(CASE_TYPES), st.sampled_from(PARTIES),
              st.integers(0, 25)),
    st.tuples(st.just("answer"), st.sampled_from([*IDS, UNKNOWN_ID])),
    st.tuples(st.just("extend"), st.sampled_from([*IDS, UNKNOWN_ID]), st.integers(-2, 17), st.sampled_from(APPROVERS)),
    st.tuples(st.just("extend"), st.sampled_from(IDS), st.integers(1, 10), st.just("head")),
    st.tuples(st.just("tick")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("reload")),
)
# long enough for cases to be started, extended, reminded, breached and answered in one run
STEPS = st.lists(st.tuples(st.integers(0, 3 * 86_400), OPS), min_size=10, max_size=50)
STARTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 10, 1), timezones=st.just(ZONE))


def _approver(who: str, party: str) -> str:
    head = HEADS.get(party, "nobody")
    return {"head": head, " head ": f" {head} ", "officer": DEPTS[party].data_officer if party in DEPTS else "x",
            "another head": HEADS["NJ-MZ"], "": ""}[who]


def _states(engine: DeadlineEngine) -> dict[str, tuple]:
    return {k: astuple(s) for k, s in engine.states.items()}


def _reload(topic: dict[str, DeadlineState]) -> DeadlineEngine:
    engine = DeadlineEngine(CAL, HEADS)
    for s in topic.values():
        engine.load(s)
    return engine


@STATE
@given(t0=STARTS, steps=STEPS)
@pytest.mark.rule("R-26.1")
@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-7.1")
def test_random_command_sequences_keep_the_deadline_engine_consistent(t0, steps):
    """Random start / answer / extend / tick / restart / reload on known and unknown ids, repeated and
    out of order, with a clock that never goes back. Each command's outcome is predicted from the measures:
    due dates in working days (R-26.1, R-19.1 ...), one extension within the limit approved by the
    party's registered head before the deadline passes (R-19.1, R-7.1), no reminder or breach for an
    answered case, and a restart from the compacted topic repeats nothing."""
    engine = DeadlineEngine(CAL, HEADS)
    topic: dict[str, DeadlineState] = {}  # the compacted deadlines topic: latest state per id
    started: dict[str, tuple[str, str]] = {}  # deadline id -> (case type, party) of the start that counted
    closed: set[str] = set()
    extensions: Counter[str] = Counter()
    emitted = []  # every notice, in order
    now = t0
    for advance, op in steps:
        now += timedelta(seconds=advance)
        today = now.date()
        before, open_before = _states(engine), engine.open_count()
        kind, args = op[0], op[1:]
        if kind == "restart":  # a new worker, from the compacted topic
            restarted = _reload(topic)
            assert _states(restarted) == before and restarted.open_count() == open_before
            assert restarted.changed() == []  # loading is not a change
            engine = restarted
            continue
        if kind == "reload":  # the topic read again into the running engine (a rebalance)
            for state in topic.values():
                engine.load(state)
            assert _states(engine) == before and engine.open_count() == open_before and engine.changed() == []
            continue
        # ---- what the measures say must happen
        refused, expect = False, None
        if kind == "start":
            did, case_type, party, back = args
            if did in started:
                expect = []  # a redelivered start
            elif case_type not in PROCESSES or party not in HEADS:
                refused = True
        elif kind == "answer":
            (did,) = args
            refused = did not in started
            if did in closed:
                expect = []
        elif kind == "extend":
            did, days, who = args
            if did not in started:
                refused = True
            else:
                s, proc = engine.states[did], PROCESSES[started[did][0]]
                allowed = (proc.max_extension_days > 0 and not s.closed and today <= s.due_on and s.extended_by == 0
                           and 1 <= days <= proc.max_extension_days and who in ("head", " head "))
                refused = not allowed
                old_due = s.due_on
        # ---- what happens
        try:
            if kind == "start":
                notices = engine.start(did, case_type, f"CASE-{did}", party, today - timedelta(days=back), now)
            elif kind == "answer":
                notices = engine.answer(did, now)
            elif kind == "extend":
                notices = engine.extend(did, days, _approver(who, started[did][1]) if did in started else "x", now)
            else:
                notices = engine.tick(now)
        except Refusal as exc:
            assert refused, f"{op} refused: {exc.reason}"
            assert exc.reason.strip() and all(RULE_ID.match(r) for r in exc.rule_ids)
            assert _states(engine) == before and engine.open_count() == open_before and engine.changed() == []
            continue
        assert not refused, f"{op} at {now} should have been refused"
        if expect is not None:
            assert notices == [] and _states(engine) == before
        for s in engine.changed():
            topic[s.deadline_id] = s
        emitted += notices
        assert all(n.at == now for n in notices)
        # ---- the notices, and the state after them
        if kind == "start" and did not in started:
            started[did] = (case_type, party)
            (n,) = notices
            proc = PROCESSES[case_type]
            want = CAL.add_working_days(today - timedelta(days=back), proc.days)
            assert (n.kind, n.due_on, n.provisional, n.rule_id, n.party) == (
                "started", want.due, want.provisional, proc.rule_id, party)
        elif kind == "answer" and expect is None:
            closed.add(did)
            assert [n.kind for n in notices] == ["closed"] and engine.states[did].closed
        elif kind == "extend":
            extensions[did] += 1
            (n,) = notices
            s = engine.states[did]
            assert n.kind == "extended" and n.due_on == s.due_on == CAL.add_working_days(old_due, days).due
            assert (s.extended_by, s.extension_approved_by) == (days, HEADS[started[did][1]])
        elif kind == "tick":
            for n in notices:
                assert n.kind in ("reminder", "breach") and n.deadline_id not in closed
                s = engine.states[n.deadline_id]
                assert today >= (s.remind_on if n.kind == "reminder" else s.due_on + timedelta(days=1))
            for s in engine.states.values():  # a tick catches up with everything due by now, and no more
                if not s.closed:
                    assert s.reminded == (today >= s.remind_on) and s.breached == (today > s.due_on), s
        assert engine.open_count() == len(started) - len(closed) >= 0
        assert topic.keys() == engine.states.keys()

    # ---- over the whole run
    ids = Counter(n.notice_id for n in emitted)
    assert max(ids.values(), default=1) == 1, f"a notice was emitted twice: {ids.most_common(1)}"
    seen_closed: set[str] = set()
    for n in emitted:
        assert not (n.kind in ("reminder", "breach") and n.deadline_id in seen_closed), f"{n.kind} after answer"
        if n.kind == "closed":
            seen_closed.add(n.deadline_id)
    per = Counter((n.deadline_id, n.kind) for n in emitted)
    for did in started:
        assert per[did, "breach"] <= 1 and per[did, "reminder"] <= 1 + extensions[did] and per[did, "started"] == 1

    # ---- restart consistency: a fresh engine loaded from the topic goes on exactly like this one
    restarted = _reload(topic)
    assert _states(restarted) == _states(engine) and restarted.open_count() == engine.open_count()
    for later in (now, now + timedelta(days=20), now + timedelta(days=90)):
        a, b = engine.tick(later), restarted.tick(later)
        assert [(n.notice_id, n.kind) for n in a] == [(n.notice_id, n.kind) for n in b]
        assert not {n.notice_id for n in a} & set(ids), "a reminder or breach was repeated"
        ids.update(n.notice_id for n in a)
    assert restarted.tick(now + timedelta(days=90)) == []
    for s in engine.states.values():
        assert s.closed or (s.reminded and s.breached)  # nothing open escapes its breach


# =========================================================================== sharing

WY = approved_entry("wy-subsidy.yaml")  # conditional, provider WY-MZ
GA = approved_entry("ga-population.yaml")  # unconditional, provider NJ-GA
NO_SHARE = {**WY, "entry": {**WY["entry"], "share_attribute": "none"}}
ENTRIES = {"WY": WY, "GA": GA, "none": NO_SHARE, "missing": None}
PROVIDER = "WY-MZ"
WY_ITEMS = sharing.entry_items(WY)  # without the subject identifier item
BLANKS = st.sampled_from(["", " ", "\t", "\u3000"])
TEXT = st.text(max_size=8) | BLANKS
DEPT = st.sampled_from(sorted(DEPTS)) | st.sampled_from(["XX-NOPE", ""])
ITEM = st.sampled_from([*WY_ITEMS, "公民身份号码", "姓名", "银行账号"]) | st.text(max_size=4)
DATES = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
DATE_TEXT = DATES.map(date.isoformat) | st.text(max_size=10) | st.sampled_from(
    ["2026-02-30", "2026-13-01", "2026/11/01", "20261101", " 2026-11-01", ""])
SUBJECT = st.sampled_from(["511024197512305671", "91510000MA62345678", "S1", "S2"])


def _decoded(schema: str, rec: dict) -> dict:
    """The record as the agent gets it: encoded and decoded by the Avro codec."""
    return CODEC.decode(CODEC.encode(schema, rec), schema).record


def _iso(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _well_formed(problems: list) -> None:
    assert isinstance(problems, list)
    for p in problems:
        assert isinstance(p, cat.Refusal) and isinstance(p.reason, str) and p.reason.strip()
        assert p.rule_ids and all(RULE_ID.match(r) for r in p.rule_ids)


def _rules(problems) -> set[str]:
    return {r for p in problems for r in p.rule_ids}


@st.composite
def approved_requests(draw):
    """A request check_request accepts and an approval check_answer accepts, as the agent sees them."""
    start = draw(DATES)
    req = _decoded("govbus.sharing.ShareRequest", {
        "event_id": draw(st.text(min_size=1, max_size=6)), "occurred_at": NOW,
        "requester": draw(st.sampled_from(sorted(set(DEPTS) - {PROVIDER}))), "resource_code": "WY-MZ-DB-001",
        "purpose": draw(st.text(min_size=1, max_size=8).filter(str.strip)),
        "items": draw(st.lists(st.sampled_from(WY_ITEMS), min_size=1, unique=True)),
        "subjects": draw(st.lists(SUBJECT, max_size=2, unique=True)),
        "valid_from": start.isoformat(), "valid_until": (start + timedelta(days=draw(st.integers(0, 400)))).isoformat(),
    })
    answer = _decoded("govbus.sharing.ShareAnswer", {
        "event_id": "a1", "occurred_at": NOW, "request_id": req["event_id"], "provider": PROVIDER, "person": "邹凯",
        "decision": "approve", "reason": None, "basis": None,
        "items": draw(st.lists(st.sampled_from(req["items"]), unique=True)),
    })
    assert sharing.check_request(req, WY, DEPTS) == [] and sharing.check_answer(answer, req, PROVIDER) == []
    return req, answer


REQUEST_FIELDS = {
    "requester": st.just(PROVIDER) | DEPT | TEXT, "resource_code": st.text(max_size=6), "purpose": TEXT,
    "items": st.lists(ITEM, max_size=4), "subjects": st.lists(SUBJECT, max_size=2),
    "valid_from": DATE_TEXT, "valid_until": DATE_TEXT,
}


@st.composite
def requests(draw):
    """A request check_request would accept, with up to two fields replaced by any value of their
    schema type (so that each condition is also reached on its own), as the agent decodes it."""
    req, _ = draw(approved_requests())
    for field in draw(st.lists(st.sampled_from([*sorted(REQUEST_FIELDS), "swap dates"]), max_size=2, unique=True)):
        if field == "swap dates":
            req["valid_from"], req["valid_until"] = req["valid_until"], req["valid_from"]
        else:
            req[field] = draw(REQUEST_FIELDS[field])
    return _decoded("govbus.sharing.ShareRequest", req)


GOOD_REQUEST = _decoded("govbus.sharing.ShareRequest", {
    "event_id": "r1", "occurred_at": NOW, "requester": "NJ-YB", "resource_code": "WY-MZ-DB-001",
    "purpose": "医保救助衔接", "items": ["姓名", "保障类别"], "subjects": [], "valid_from": "2026-11-01",
    "valid_until": "2027-10-31"})


def _bad_request(**kw) -> dict:
    return {**GOOD_REQUEST, **kw}


@RULES
@given(req=requests(), which=st.sampled_from(["WY", "WY", "WY", "GA", "none", "missing"]))
@example(req=GOOD_REQUEST, which="WY")
@example(req=_bad_request(requester="XX-NOPE"), which="WY")
@example(req=_bad_request(requester=PROVIDER), which="WY")
@example(req=_bad_request(purpose=" "), which="WY")
@example(req=_bad_request(items=[]), which="WY")
@example(req=_bad_request(items=["姓名", "银行账号"]), which="WY")
@example(req=_bad_request(items=["公民身份号码"]), which="WY")  # the subject identifier is not a data item to ask
@example(req=_bad_request(valid_from="2026-02-30"), which="WY")
@example(req=_bad_request(valid_until="2026-10-31"), which="WY")
@example(req=GOOD_REQUEST, which="GA")
@example(req=GOOD_REQUEST, which="none")
@example(req=GOOD_REQUEST, which="missing")
@pytest.mark.rule("R-26.1")
@pytest.mark.rule("R-10.1")
def test_check_request_accepts_exactly_the_requests_the_measures_allow(req, which):
    entry = ENTRIES[which]
    problems = sharing.check_request(req, entry, DEPTS)
    _well_formed(problems)
    start, end = _iso(req["valid_from"]), _iso(req["valid_until"])
    acceptable = (
        req["requester"] in DEPTS and which == "WY" and req["requester"] != PROVIDER and req["purpose"].strip() != ""
        and req["items"] and set(req["items"]) <= set(WY_ITEMS) and start and end and start <= end)
    assert (problems == []) == bool(acceptable), problems
    if entry is None:
        assert "R-10.1" in _rules(problems)  # nothing is shared for a resource outside the catalog
    if start is None and entry is not None:
        assert any(repr(req["valid_from"]) in p.reason for p in problems)


ANSWER_FIELDS = {
    "provider": DEPT, "decision": st.sampled_from(["Approve", "yes", ""]) | st.text(max_size=5),
    "reason": st.none() | BLANKS | TEXT, "basis": st.none() | BLANKS | TEXT,
    "items": st.lists(ITEM, min_size=1, max_size=3),
}
REASONED = {"reason": "涉及个人隐私", "basis": "《社会救助暂行办法》第五十九条"}


@RULES
@given(requested=st.lists(st.sampled_from(WY_ITEMS), min_size=1, max_size=3, unique=True),
       keep=st.lists(st.booleans(), min_size=3, max_size=3), decision=st.sampled_from(["approve", "refuse"]),
       replaced=st.lists(st.sampled_from(sorted(ANSWER_FIELDS)), max_size=2, unique=True),
       values=st.fixed_dictionaries(ANSWER_FIELDS))
@example(requested=["姓名"], keep=[True] * 3, decision="approve", replaced=[], values={})
@example(requested=["姓名"], keep=[False] * 3, decision="refuse", replaced=[], values={})
@example(requested=["姓名"], keep=[False] * 3, decision="approve", replaced=["provider"], values={"provider": "NJ-MZ"})
@example(requested=["姓名"], keep=[False] * 3, decision="approve", replaced=["decision"],
         values={"decision": "Approve"})
@example(requested=["姓名"], keep=[False] * 3, decision="refuse", replaced=["basis"], values={"basis": " "})
@example(requested=["姓名"], keep=[False] * 3, decision="refuse", replaced=["reason"], values={"reason": None})
@example(requested=["姓名"], keep=[False] * 3, decision="approve", replaced=["basis"], values={"basis": None})
@example(requested=["姓名"], keep=[False] * 3, decision="approve", replaced=["items"], values={"items": ["月救助金额"]})
@pytest.mark.rule("R-26.1")
@pytest.mark.rule("R-26.2")
def test_check_answer_accepts_exactly_a_providers_approval_or_reasoned_refusal(
        requested, keep, decision, replaced, values):
    """A proper approval or refusal with up to two fields replaced by any value of their schema type."""
    answer = {"event_id": "a1", "occurred_at": NOW, "request_id": "r1", "provider": PROVIDER, "person": "邹凯",
              "decision": decision, **REASONED, "items": [i for i, k in zip(requested, keep, strict=False) if k]}
    answer = _decoded("govbus.sharing.ShareAnswer", {**answer, **{f: values[f] for f in replaced}})
    request = {"event_id": "r1", "requester": "NJ-YB", "items": requested}
    problems = sharing.check_answer(answer, request, PROVIDER)
    _well_formed(problems)
    reasoned = all(v is not None and v.strip() for v in (answer["reason"], answer["basis"]))
    acceptable = (answer["provider"] == PROVIDER and answer["decision"] in ("approve", "refuse")
                  and (answer["decision"] == "approve" or reasoned) and set(answer["items"]) <= set(requested))
    assert (problems == []) == acceptable, problems
    if not set(answer["items"]) <= set(requested):
        assert "R-26.2" in _rules(problems)  # an approval never widens the scope


def _grants(grantees: list[str]) -> st.SearchStrategy[list[dict]]:
    grant = st.fixed_dictionaries({
        "grant_id": st.text(min_size=1, max_size=6).map(lambda s: f"grant:{s}"), "grantee": st.sampled_from(grantees),
        "provider": st.just(PROVIDER), "resource_code": st.just("WY-MZ-DB-001"),
        "items": st.lists(st.sampled_from(WY_ITEMS), unique=True).map(sorted),
        "subjects": st.lists(SUBJECT, max_size=2, unique=True).map(sorted), "purpose": st.text(max_size=6),
        "valid_from": DATES.map(date.isoformat), "valid_until": DATES.map(date.isoformat), "revoked": st.booleans(),
        "revoked_reason": st.none(), "granted_by": st.just("WY-MZ (邹凯)"), "request_id": st.just("r"),
        "granted_at": st.just(NOW)})
    return st.lists(grant, max_size=5, unique_by=lambda g: g["grant_id"]).map(
        lambda gs: [_decoded("govbus.sharing.Grant", g) for g in gs])


@RULES
@given(data=st.data(), pair=approved_requests(), on=DATES, subject=SUBJECT,
       delivered=st.dictionaries(st.sampled_from([*WY_ITEMS, "公民身份号码", "银行账号"]), st.text(max_size=4)))
@pytest.mark.rule("R-26.2")
def test_an_approval_is_a_directed_authorization_and_the_feed_carries_exactly_its_scope(
        data, pair, on, subject, delivered):
    req, answer = pair
    grant = sharing.make_grant(req, answer["items"], PROVIDER, "WY-MZ (邹凯)", NOW)
    assert _decoded("govbus.sharing.Grant", grant) is not None  # what the agent publishes encodes
    assert (grant["grantee"], grant["provider"], grant["purpose"]) == (req["requester"], PROVIDER, req["purpose"])
    assert grant["items"] == sorted(answer["items"] or req["items"]) and set(grant["items"]) <= set(req["items"])
    assert grant["subjects"] == sorted(req["subjects"])
    assert (grant["valid_from"], grant["valid_until"]) == (req["valid_from"], req["valid_until"])

    others = data.draw(_grants(sorted(set(DEPTS) - {req["requester"]})))  # other departments' grants
    subscribers = data.draw(st.lists(st.sampled_from(sorted(DEPTS)), max_size=4))
    covered = (date.fromisoformat(req["valid_from"]) <= on <= date.fromisoformat(req["valid_until"])
               and (not req["subjects"] or subject in req["subjects"]))
    assert sharing.grant_valid(grant, subject, on) == covered
    ways = sharing.routes(PROVIDER, subject, WY, subscribers, [grant, *others], on)
    mine = [r for r in ways if r.department == req["requester"]]
    if not covered:
        assert mine == []  # not yet valid, expired, or another subject: nothing
    else:
        (r,) = mine  # to that user only, in that scope, for that purpose
        assert (r.grant_id, r.purpose, r.items) == (grant["grant_id"], req["purpose"], tuple(grant["items"]))
        assert sharing.project(delivered, r.items) == {k: v for k, v in delivered.items() if k in grant["items"]}
    revoked = sharing.routes(PROVIDER, subject, WY, subscribers, [{**grant, "revoked": True}, *others], on)
    assert all(r.department != req["requester"] for r in revoked)
    assert not sharing.grant_valid({**grant, "revoked": True}, subject, on)


@RULES
@given(data=st.data(), attribute=st.sampled_from(["unconditional", "conditional", "none"]),
       publisher=st.sampled_from([PROVIDER, "NJ-YB"]), subject=SUBJECT, on=DATES,
       subscribers=st.lists(st.sampled_from(["NJ-YB", "NJ-RS", "WY-MZ", "NJ-MZ"]), max_size=5),
       delivered=st.dictionaries(st.sampled_from([*WY_ITEMS, "公民身份号码", "银行账号"]), st.text(max_size=3)))
@pytest.mark.rule("R-26.2")
@pytest.mark.rule("R-27.1")
@pytest.mark.rule("R-23.1")
def test_routes_follow_the_share_attribute_and_never_reach_the_publisher(
        data, attribute, publisher, subject, on, subscribers, delivered):
    grants = data.draw(_grants(["NJ-YB", "NJ-RS", "WY-MZ", "NJ-JY"]))
    entry = {**WY, "entry": {**WY["entry"], "share_attribute": attribute}}
    ways = sharing.routes(publisher, subject, entry, subscribers, grants, on)
    departments = [r.department for r in ways]
    assert departments == sorted(set(departments)) and publisher not in departments
    if attribute == "none":
        assert ways == []  # a no-share resource never leaves its provider
    elif attribute == "unconditional":
        assert departments == sorted(set(subscribers) - {publisher})  # subscribers, without request
        for r in ways:
            assert (r.grant_id, r.purpose, r.items) == (f"subscription:WY-MZ-DB-001:{r.department}", None, None)
            assert sharing.project(delivered, r.items) == delivered
    else:
        valid = [g for g in grants if sharing.grant_valid(g, subject, on)]
        assert set(departments) == {g["grantee"] for g in valid} - {publisher}  # grant holders, nobody else
        by_id = {g["grant_id"]: g for g in grants}
        for r in ways:
            g = by_id[r.grant_id]
            assert g["grantee"] == r.department and not g["revoked"]
            assert date.fromisoformat(g["valid_from"]) <= on <= date.fromisoformat(g["valid_until"])
            assert not g["subjects"] or subject in g["subjects"]
            assert (r.items, r.purpose) == (tuple(g["items"]), g["purpose"])
            projected = sharing.project(delivered, r.items)
            assert set(projected) <= set(g["items"]) and all(projected[k] == delivered[k] for k in projected)
            assert set(projected) == set(delivered) & set(g["items"])


# =========================================================================== catalog

SYSTEMS = {"GA-HZ": {"department": "NJ-GA", "system_code": "GA-HZ", "stage": "registered"},
           "WY-MZ-JZ": {"department": "WY-MZ", "system_code": "WY-MZ-JZ", "stage": "registered"}}
SEEDS = {"WY": WY["entry"], "GA": GA["entry"]}
WORDS = sorted(cat.ATTRIBUTE_WORDS)
SHARE_VALUES = st.sampled_from([*cat.SHARE_ATTRIBUTES, *WORDS, " 有条件共享 ", "Conditional", "not_open"]) | TEXT
OPEN_VALUES = st.sampled_from([*cat.OPEN_ATTRIBUTES, *WORDS, "none", "open"]) | TEXT
DATA_ITEM = st.fixed_dictionaries({
    "name": st.sampled_from(["公民身份号码", "姓名", "保障类别", "月救助金额"]) | TEXT,
    "type": st.sampled_from(cat.ITEM_TYPES) | TEXT, "subject_id": st.booleans(), "basic": st.booleans(),
    "personal": st.booleans()})
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "resource_code": TEXT, "name": TEXT, "summary": TEXT, "classification": TEXT, "format": TEXT,
    "security_level": TEXT, "usage_requirements": TEXT, "legal_basis": TEXT,
    "provider": DEPT, "share_attribute": SHARE_VALUES, "open_attribute": OPEN_VALUES,
    "share_conditions": st.none() | TEXT, "share_basis": st.none() | TEXT, "open_conditions": st.none() | TEXT,
    "open_basis": st.none() | TEXT,
    "base_database": st.none() | st.sampled_from(cat.BASE_DATABASES) | TEXT,
    "update_cycle": st.sampled_from(cat.UPDATE_CYCLES) | TEXT,
    "system_code": st.sampled_from([*SYSTEMS, "NO-SUCH"]) | TEXT,
    "classified": st.booleans(),
    "data_items": st.lists(DATA_ITEM, max_size=5),
}


@st.composite
def submitted_entries(draw):
    """A seed entry with a few fields replaced by random values of their schema type, decoded and
    normalised as the catalog agent does; and the submitting department."""
    entry = dict(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for field in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4, unique=True)):
        entry[field] = draw(FIELD_VALUES[field])
    rec = _decoded("govbus.catalog.CatalogSubmission", {
        "event_id": "s1", "occurred_at": NOW, "submitter": "x", "kind": "new", "change_date": None,
        "change_reason": None, "entry": entry})
    submitter = draw(st.just(entry["provider"]) | DEPT)
    return cat.normalise_attributes(dict(rec["entry"])), submitter


def _blank(v) -> bool:
    return v is None or not v.strip()


@RULES
@given(pair=submitted_entries())
@pytest.mark.rule("R-11.1")
@pytest.mark.rule("R-3.1")
@pytest.mark.rule("R-23.1")
@pytest.mark.rule("R-24.1")
@pytest.mark.rule("R-24.2")
@pytest.mark.rule("R-30.1")
def test_check_entry_refuses_with_reasons_and_accepts_only_complete_entries(pair):
    entry, submitter = pair
    problems = cat.check_entry(submitter, entry, DEPTS, SYSTEMS)
    _well_formed(problems)
    if entry["classified"]:
        assert [p.rule_ids for p in problems] == [("R-3.1",)]  # refused outright, nothing else to say
        return
    if problems:
        return
    # accepted: everything the measures ask of an entry holds
    assert all(not _blank(entry[f]) for f in cat.REQUIRED)
    items = entry["data_items"]
    assert items and len({i["name"] for i in items}) == len(items)
    assert all(i["type"] in cat.ITEM_TYPES for i in items) and sum(i["subject_id"] for i in items) == 1
    assert entry["update_cycle"] in cat.UPDATE_CYCLES
    assert entry["provider"] == submitter and submitter in DEPTS  # each department its own
    share, opened = entry["share_attribute"], entry["open_attribute"]
    assert share in cat.SHARE_ATTRIBUTES and opened in cat.OPEN_ATTRIBUTES
    if share != "unconditional":
        assert not _blank(entry["share_basis"])  # not sharing needs a cited basis
    if share == "conditional":
        assert not _blank(entry["share_conditions"])
    if opened != "unconditional":
        assert not _blank(entry["open_basis"])
    if entry["base_database"] is not None:
        assert cat.lead_department(entry["base_database"], DEPTS) == entry["provider"]
        assert share == "unconditional" or not any(i["basic"] for i in items)
    assert SYSTEMS[entry["system_code"]]["department"] == entry["provider"]


def _set(field, value):
    def apply(e):
        e[field] = value
    return apply


def _item(**kw):
    def apply(e):
        e["data_items"] = [*e["data_items"], {"name": "新项", "type": "string", "subject_id": False, "basic": False,
                                              "personal": False, **kw}]
    return apply


def _case(seed: str, mutate, rule: str | None, id: str):
    """(which seed, the mutation, the rule its refusal must cite; None: still acceptable)"""
    return pytest.param(seed, mutate, rule, id=id, marks=[pytest.mark.rule(rule)] if rule else [])


MUTATIONS = [
    *[_case("WY", _set(f, ""), "R-11.1", id=f"blank-{f}") for f in sorted(cat.REQUIRED)],
    _case("WY", _set("share_attribute", "sometimes"), "R-23.1", id="share-attribute-unknown"),
    _case("WY", _set("share_basis", " "), "R-24.1", id="conditional-without-basis"),
    _case("WY", _set("share_conditions", None), "R-11.1", id="conditional-without-conditions"),
    _case("GA", _set("share_attribute", "none"), "R-24.1", id="none-without-basis"),
    _case("GA", lambda e: e.update(share_attribute="conditional", share_basis="b", share_conditions="c"),
                 "R-24.2", id="basic-items-not-unconditional"),
    _case("WY", _set("open_attribute", "public"), "R-30.1", id="open-attribute-unknown"),
    _case("WY", _set("open_basis", None), "R-30.1", id="not-open-without-basis"),
    _case("WY", _set("base_database", "weather"), "R-15.1", id="unknown-base-database"),
    _case("WY", _set("base_database", "population"), "R-15.1", id="base-database-of-another-lead"),
    _case("WY", _set("system_code", "NO-SUCH"), "R-13.2", id="unregistered-system"),
    _case("WY", _set("system_code", "GA-HZ"), "R-13.2", id="system-of-another-department"),
    _case("WY", _set("update_cycle", "whenever"), "R-11.1", id="unknown-update-cycle"),
    _case("WY", _set("data_items", []), "R-11.1", id="no-data-items"),
    _case("WY", _item(subject_id=True), "R-11.1", id="two-subject-identifiers"),
    _case("WY", _item(type="blob"), "R-11.1", id="unknown-item-type"),
    _case("WY", _item(name="姓名"), "R-11.1", id="item-listed-twice"),
    _case("WY", _set("classified", True), "R-3.1", id="classified"),
    _case("WY", _set("share_attribute", " 有条件共享 "), None, id="chinese-share-word"),
    _case("GA", _set("open_attribute", "不予开放"), None, id="chinese-open-word"),
    _case("WY", _set("open_conditions", None), None, id="optional-field-missing"),
]


@RULES
@pytest.mark.parametrize("seed, mutate, rule", MUTATIONS)
@given(submitter=st.sampled_from(["own", "NJ-MZ", "XX-NOPE"]))
def test_each_defect_of_an_entry_is_refused_under_its_rule(seed, mutate, rule, submitter):
    entry = {**SEEDS[seed], "data_items": list(SEEDS[seed]["data_items"])}
    mutate(entry)
    entry = cat.normalise_attributes(dict(_decoded("govbus.catalog.CatalogSubmission", {
        "event_id": "s1", "occurred_at": NOW, "submitter": "x", "kind": "new", "change_date": None,
        "change_reason": None, "entry": entry})["entry"]))
    who = entry["provider"] if submitter == "own" else submitter
    problems = cat.check_entry(who, entry, DEPTS, SYSTEMS)
    _well_formed(problems)
    want = set() if rule is None else {rule}
    if entry["provider"] and who != entry["provider"] and rule != "R-3.1":
        want.add("R-12.1")  # another department cannot submit it
    assert _rules(problems) >= want and (want or problems == [])
    if rule == "R-3.1":
        assert len(problems) == 1


@RULES
@given(reviewer=st.sampled_from(["NJ-SJJ", "WY-SJJ"]) | DEPT, expected=st.sampled_from(["NJ-SJJ", "WY-SJJ"]),
       decision=st.sampled_from(["approve", "reject", "reject"]) | st.text(max_size=6),
       reason=st.none() | BLANKS | TEXT | st.just("资源代码与已有条目重复"))
@example(reviewer="NJ-SJJ", expected="NJ-SJJ", decision="reject", reason="重复")
@example(reviewer="NJ-SJJ", expected="NJ-SJJ", decision="reject", reason=" ")
@example(reviewer="NJ-SJJ", expected="NJ-SJJ", decision="reject", reason=None)
@example(reviewer="NJ-SJJ", expected="NJ-SJJ", decision="approve", reason=None)
@example(reviewer="NJ-SJJ", expected="NJ-SJJ", decision="approved", reason=None)
@example(reviewer="WY-SJJ", expected="NJ-SJJ", decision="approve", reason=None)
@pytest.mark.rule("R-12.1")
def test_check_review_accepts_only_the_right_authoritys_decision(reviewer, expected, decision, reason):
    problems = cat.check_review(reviewer, decision, reason, expected)
    _well_formed(problems)
    acceptable = reviewer == expected and decision in ("approve", "reject") and (decision == "approve"
                                                                                 or not _blank(reason))
    assert (problems == []) == acceptable
    assert all(p.rule_ids == ("R-12.1",) for p in problems)


ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6) | st.sampled_from(WORDS),
                   lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                   max_leaves=4)


@RULES
@given(entry=st.dictionaries(st.sampled_from(["share_attribute", "open_attribute", "name", "provider"])
                             | st.text(max_size=4), ANY | SHARE_VALUES | OPEN_VALUES, max_size=5))
@pytest.mark.rule("R-23.1")
@pytest.mark.rule("R-30.1")
def test_normalise_attributes_only_translates_the_words_of_the_measures(entry):
    original = dict(entry)
    out = cat.normalise_attributes(entry)
    assert out is entry and out.keys() == original.keys()
    for k, v in original.items():
        word = v.strip() if isinstance(v, str) else None
        if k in ("share_attribute", "open_attribute") and word in cat.ATTRIBUTE_WORDS:
            assert out[k] == cat.ATTRIBUTE_WORDS[word]
        else:
            assert out[k] is v  # everything else untouched
    assert cat.normalise_attributes(dict(out)) == out  # idempotent
