"""The deadline engine against the real 2026 PRC calendar, with a fake clock (never sleeps)."""

from __future__ import annotations

from collections import Counter
from dataclasses import astuple
from datetime import date, datetime, timedelta

import pytest

from streams.rules.deadlines import PROCESSES, ZONE, DeadlineEngine
from streams.rules.refusals import Refusal
from streams.rules.workcalendar import PublishedYear, WorkCalendar
from topics.departments import load

DEPTS = load()
HEADS = {code: d.head for code, d in DEPTS.items()}
PARTY = "NJ-GA"
HEAD = DEPTS[PARTY].head


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=ZONE)


def hours(start: datetime, end: datetime):
    t = start
    while t <= end:
        yield t
        t += timedelta(hours=1)


@pytest.fixture
def engine() -> DeadlineEngine:
    return DeadlineEngine(WorkCalendar(), HEADS)


def kinds(notices) -> list[str]:
    return [n.kind for n in notices]


# ---- the table


@pytest.mark.parametrize(
    "case_type, days, ext, rule",
    [
        pytest.param("catalog_update", 15, 0, "R-14.1", marks=pytest.mark.rule("R-14.1")),
        pytest.param("catalog_review", 10, 0, "R-14.1", marks=pytest.mark.rule("R-14.1")),
        pytest.param("share_request", 10, 0, "R-26.1", marks=pytest.mark.rule("R-26.1")),
        pytest.param("verification", 10, 10, "R-19.1", marks=pytest.mark.rule("R-19.1")),
        pytest.param("open_catalog_objection", 10, 10, "R-31.1", marks=pytest.mark.rule("R-31.1")),
        pytest.param("open_request", 15, 15, "R-32.1", marks=pytest.mark.rule("R-32.1")),
        pytest.param("objection_mark", 3, 0, "R-41.1", marks=pytest.mark.rule("R-41.1")),
        pytest.param("objection_decide", 10, 0, "R-41.1", marks=pytest.mark.rule("R-41.1")),
        pytest.param("objection_forward", 5, 0, "R-41.1", marks=pytest.mark.rule("R-41.1")),
        pytest.param(
            "objection_forwarded_decide", 5, 0, "R-41.1", marks=pytest.mark.rule("R-41.1")
        ),
    ],
)
def test_each_process_has_the_deadline_of_the_measures(engine, case_type, days, ext, rule):
    p = PROCESSES[case_type]
    assert (p.days, p.max_extension_days, p.rule_id) == (days, ext, rule)
    # a plain stretch of March 2026 with no holidays: n working days after Monday 2026-03-02
    (n,) = engine.start("d1", case_type, "C-1", PARTY, date(2026, 3, 2), at(2026, 3, 2, 10))
    expected = WorkCalendar().add_working_days(date(2026, 3, 2), days).due
    assert n.due_on == expected and n.rule_id == rule and not n.provisional


def test_the_table_has_exactly_the_ten_processes():
    assert set(PROCESSES) == {
        "catalog_update",
        "catalog_review",
        "share_request",
        "verification",
        "open_catalog_objection",
        "open_request",
        "objection_mark",
        "objection_decide",
        "objection_forward",
        "objection_forwarded_decide",
    }


# ---- counting


@pytest.mark.rule("R-26.1")
def test_counted_from_the_day_after_receipt_across_national_day(engine):
    notices = engine.start(
        "sr-1", "share_request", "SR-2026-0001", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16)
    )
    (n,) = notices
    assert n.kind == "started" and n.due_on == date(2026, 10, 20) and not n.provisional
    assert n.notice_id == "sr-1:started:2026-10-20"
    assert n.at == at(2026, 9, 30, 16) and n.rule_id == "R-26.1"
    assert "SR-2026-0001" in n.message and PARTY in n.message and "2026-10-20" in n.message
    s = engine.states["sr-1"]
    # two working days before Tuesday 10-20: Monday 10-19, then Friday 10-16
    assert s.remind_on == date(2026, 10, 16)


@pytest.mark.rule("R-26.1")
def test_counted_across_the_adjusted_saturday_and_spring_festival(engine):
    # Friday 02-13 received; Saturday 02-14 is an adjusted working day and counts as day 1
    (n,) = engine.start(
        "sr-2", "share_request", "SR-2026-0002", PARTY, date(2026, 2, 13), at(2026, 2, 13, 9)
    )
    assert n.due_on == date(2026, 3, 5)


def test_reminder_is_never_before_the_day_after_receipt():
    engine = DeadlineEngine(WorkCalendar(), HEADS, remind_before=3)
    # 3 working days from Monday 03-02 is Thursday 03-05; 3 before that is the day of receipt itself
    engine.start("om-1", "objection_mark", "OB-1", "NJ-SJJ", date(2026, 3, 2), at(2026, 3, 2, 9))
    assert engine.states["om-1"].due_on == date(2026, 3, 5)
    assert engine.states["om-1"].remind_on == date(2026, 3, 3)


# ---- reminders and breaches


@pytest.mark.rule("R-26.1")
def test_reminder_two_working_days_before_due_fires_exactly_once(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    assert engine.tick(at(2026, 10, 15, 23, 59, 59)) == []
    fired = []
    for t in hours(at(2026, 10, 1), at(2026, 10, 20, 23)):
        for n in engine.tick(t):
            fired.append((t, n))
    assert [(t, n.kind) for t, n in fired] == [(at(2026, 10, 16), "reminder")]
    n = fired[0][1]
    assert n.notice_id == "sr-1:reminder:2026-10-20" and n.due_on == date(2026, 10, 20)
    assert "SR-1" in n.message and PARTY in n.message and "2026-10-20" in n.message
    assert engine.states["sr-1"].reminded and not engine.states["sr-1"].breached


@pytest.mark.rule("R-26.1")
def test_breach_fires_once_on_the_day_after_due_not_on_the_due_day(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    assert kinds(engine.tick(at(2026, 10, 20, 0))) == ["reminder"]  # a late first tick catches up
    assert engine.tick(at(2026, 10, 20, 23, 59, 59)) == []  # the whole due day is allowed
    (b,) = engine.tick(at(2026, 10, 21, 0))
    assert b.kind == "breach" and b.notice_id == "sr-1:breach:2026-10-20" and b.rule_id == "R-26.1"
    assert "SR-1" in b.message and PARTY in b.message and "2026-10-20" in b.message
    for t in hours(at(2026, 10, 21, 1), at(2026, 11, 30)):
        assert engine.tick(t) == []
    assert engine.states["sr-1"].breached and engine.open_count() == 1  # breached, still to answer


def test_reminder_then_breach_when_both_are_due_in_one_tick(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    assert kinds(engine.tick(at(2026, 11, 2))) == ["reminder", "breach"]
    assert engine.tick(at(2026, 11, 3)) == []


@pytest.mark.rule("R-26.1")
def test_answer_stops_reminder_and_breach(engine):
    engine.start("early", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    engine.start("late", "share_request", "SR-2", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    (c,) = engine.answer("early", at(2026, 10, 9, 11))
    assert c.kind == "closed" and c.notice_id == "early:closed:2026-10-20" and "within" in c.message
    assert engine.answer("early", at(2026, 10, 9, 12)) == []  # a redelivered answer
    fired = [n for t in hours(at(2026, 10, 1), at(2026, 10, 18)) for n in engine.tick(t)]
    assert [(n.deadline_id, n.kind) for n in fired] == [("late", "reminder")]
    engine.answer("late", at(2026, 10, 20, 17))
    fired = [n for t in hours(at(2026, 10, 18), at(2026, 11, 30)) for n in engine.tick(t)]
    assert fired == [] and engine.open_count() == 0
    with pytest.raises(Refusal, match="no deadline"):
        engine.answer("nope", at(2026, 10, 20))


def test_a_late_answer_says_so(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    engine.tick(at(2026, 10, 22))
    (c,) = engine.answer("sr-1", at(2026, 10, 22, 9))
    assert "after the deadline of 2026-10-20" in c.message


def test_a_month_of_deadlines_ticked_hour_by_hour(engine):
    parties = sorted(HEADS)
    types = sorted(PROCESSES)
    started, answered, fired = {}, {}, []
    start, end, k = at(2026, 9, 1), at(2026, 10, 2), 0
    for t in hours(start, end):
        if 9 <= t.hour < 18:  # office hours: cases arrive, some get answered
            for _ in range(4):
                did = f"m-{k}"
                engine.start(
                    did, types[k % len(types)], f"C-{k}", parties[k % len(parties)], t.date(), t
                )
                started[did] = t
                k += 1
            if k % 3 == 0:
                victim = f"m-{k // 2}"
                if engine.answer(victim, t):
                    answered[victim] = t
        for n in engine.tick(t):
            fired.append((t, n))
        engine.changed()
    assert len(started) > 1000
    per = Counter((n.deadline_id, n.kind) for _, n in fired)
    assert max(per.values()) == 1  # nothing fires twice
    for when, n in fired:
        s = engine.states[n.deadline_id]
        moment = s.remind_on if n.kind == "reminder" else s.due_on + timedelta(days=1)
        # fires on the first hourly tick at or after 00:00 of its day
        assert when == max(at(moment.year, moment.month, moment.day), started[n.deadline_id])
        assert n.deadline_id not in answered or when < answered[n.deadline_id]
    assert sum(1 for key in per if key[1] == "breach") > 100
    for s in engine.states.values():
        if not s.closed:
            assert s.reminded == (at(s.remind_on.year, s.remind_on.month, s.remind_on.day) <= end)
            assert s.breached == (s.due_on < end.date())
    assert engine.open_count() == len(started) - len(answered)


# ---- extensions


EXTENDABLE = [
    pytest.param("verification", 10, marks=pytest.mark.rule("R-19.1")),
    pytest.param("open_catalog_objection", 10, marks=pytest.mark.rule("R-31.1")),
    pytest.param("open_request", 15, marks=pytest.mark.rule("R-32.1")),
]


@pytest.mark.rule("R-7.1")
@pytest.mark.parametrize("case_type, max_days", EXTENDABLE)
def test_one_extension_of_at_most_the_stated_days_approved_by_the_head(engine, case_type, max_days):
    cal = WorkCalendar()
    (s,) = engine.start("x", case_type, "CASE-9", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    old_due = s.due_on
    (n,) = engine.extend("x", max_days, HEAD, at(2026, 3, 4, 10))
    assert n.kind == "extended" and n.due_on == cal.add_working_days(old_due, max_days).due
    assert HEAD in n.message and "CASE-9" in n.message and n.due_on.isoformat() in n.message
    st = engine.states["x"]
    assert st.extended_by == max_days and st.extension_approved_by == HEAD and st.due_on == n.due_on
    with pytest.raises(Refusal, match="one extension") as e:
        engine.extend("x", 1, HEAD, at(2026, 3, 5, 10))
    assert PROCESSES[case_type].rule_id in e.value.rule_ids
    assert engine.states["x"].due_on == n.due_on


@pytest.mark.rule("R-7.1")
@pytest.mark.parametrize("case_type, max_days", EXTENDABLE)
def test_extension_refused_for_too_many_days_or_without_the_heads_name(engine, case_type, max_days):
    engine.start("x", case_type, "CASE-9", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    rule = PROCESSES[case_type].rule_id
    for days in (max_days + 1, 0, -3):
        with pytest.raises(Refusal, match=f"1 to {max_days} working days") as e:
            engine.extend("x", days, HEAD, at(2026, 3, 4))
        assert rule in e.value.rule_ids
    for who in (DEPTS[PARTY].data_officer, DEPTS["NJ-MZ"].head, ""):
        with pytest.raises(Refusal, match="principal head of NJ-GA") as e:
            engine.extend("x", 1, who, at(2026, 3, 4))
        assert e.value.rule_ids == ("R-7.1", rule) and HEAD in e.value.reason
    st = engine.states["x"]
    assert st.extended_by == 0 and st.version == 0 and engine.changed()[0].version == 0


@pytest.mark.rule("R-7.1")
@pytest.mark.rule("R-19.1")
def test_only_the_party_asks_to_extend_its_deadline_and_a_refusal_is_told_to_it(engine):
    engine.start("x", "verification", "CASE-9", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    with pytest.raises(Refusal, match=f"only {PARTY}, with its principal head's approval, may ask") as e:
        engine.extend("x", 5, HEAD, at(2026, 3, 4), actor="NJ-MZ")  # with the party's own head named
    assert e.value.rule_ids == ("R-7.1", "R-19.1") and "not NJ-MZ" in e.value.reason
    assert engine.states["x"].extended_by == 0
    (n,) = engine.refused("x", "NJ-MZ", "extend", e.value, at(2026, 3, 4), "ev-1")
    assert (n.notice_id, n.kind, n.party, n.case_id, n.rule_id) == ("x:refused:ev-1", "refused", PARTY, "CASE-9",
                                                                     "R-7.1")
    assert n.message.startswith("Refused: NJ-MZ's extend of case CASE-9") and e.value.reason in n.message
    assert engine.refused("nowhere", "NJ-MZ", "extend", e.value, at(2026, 3, 4), "ev-2") == []  # no party to tell
    (ok,) = engine.extend("x", 5, HEAD, at(2026, 3, 4), actor=PARTY)
    assert ok.kind == "extended"


@pytest.mark.rule("R-19.1")
def test_the_same_extension_read_again_changes_nothing_and_is_no_second_request(engine):
    """After a restore the bus reads commands again since the snapshot: the extension it already applied is
    recognised by its event id, not refused as a second one (nor told to the party as refused)."""
    from schemas.codec import default_codec
    from streams.deadline_service import state_from_record, state_record

    engine.start("x", "verification", "CASE-9", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    (n,) = engine.extend("x", 5, HEAD, at(2026, 3, 4), actor=PARTY, event_id="ev-1")
    st = engine.states["x"]
    # the state on its compacted topic keeps the command's id, and a restarted service reads it back
    codec = default_codec()
    back = state_from_record(codec.decode(codec.encode("govbus.deadlines.DeadlineState", state_record(st)),
                                          "govbus.deadlines.DeadlineState").record)
    assert back.extension_event_id == "ev-1" and back == st
    engine.load(back)
    assert engine.extend("x", 5, HEAD, at(2026, 3, 5), actor=PARTY, event_id="ev-1") == []
    assert engine.states["x"].due_on == n.due_on and engine.states["x"].version == st.version
    with pytest.raises(Refusal, match="one extension only"):
        engine.extend("x", 5, HEAD, at(2026, 3, 5), actor=PARTY, event_id="ev-2")


@pytest.mark.rule("R-26.1")
def test_a_share_request_cannot_be_extended(engine):
    engine.start("sr", "share_request", "SR-1", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    with pytest.raises(Refusal, match="cannot be extended") as e:
        engine.extend("sr", 5, HEAD, at(2026, 3, 4))
    assert e.value.rule_ids == ("R-26.1",) and e.value.retriable is False


@pytest.mark.rule("R-19.1")
def test_no_extension_once_answered_or_past_the_deadline(engine):
    engine.start("a", "verification", "V-1", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    engine.start("b", "verification", "V-2", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    engine.answer("a", at(2026, 3, 3))
    with pytest.raises(Refusal, match="already answered"):
        engine.extend("a", 5, HEAD, at(2026, 3, 4))
    due = engine.states["b"].due_on
    # past the due day but before any tick marked it breached: still too late
    with pytest.raises(Refusal, match="ran out"):
        engine.extend("b", 5, HEAD, at(due.year, due.month, due.day) + timedelta(days=1))
    engine.tick(at(due.year, due.month, due.day) + timedelta(days=2))
    assert engine.states["b"].breached
    with pytest.raises(Refusal, match="ran out"):
        engine.extend("b", 5, HEAD, at(2026, 3, 4))


@pytest.mark.rule("R-19.1")
def test_extension_re_arms_the_reminder_for_the_new_date(engine):
    engine.start("v", "verification", "V-1", PARTY, date(2026, 3, 2), at(2026, 3, 2, 9))
    s = engine.states["v"]
    assert s.due_on == date(2026, 3, 16)
    assert kinds(engine.tick(at(2026, 3, 12))) == ["reminder"]
    (n,) = engine.extend("v", 10, HEAD, at(2026, 3, 13, 15))
    assert n.due_on == date(2026, 3, 30)
    fired = [(t, n) for t in hours(at(2026, 3, 13), at(2026, 4, 5)) for n in engine.tick(t)]
    assert [(t, n.kind, n.notice_id) for t, n in fired] == [
        (at(2026, 3, 26), "reminder", "v:reminder:2026-03-30"),
        (at(2026, 3, 31), "breach", "v:breach:2026-03-30"),
    ]


# ---- durability


@pytest.mark.rule("R-26.1")
def test_restart_from_the_changed_states_repeats_nothing():
    cal = WorkCalendar()
    a = DeadlineEngine(cal, HEADS)
    topic: dict[str, object] = {}  # the compacted topic: the latest state per deadline id

    def flush(engine):
        for s in engine.changed():
            topic[s.deadline_id] = s

    notices = a.start(
        "sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16)
    )
    notices += a.start(
        "sr-2", "share_request", "SR-2", PARTY, date(2026, 10, 9), at(2026, 10, 9, 16)
    )
    flush(a)
    for t in hours(at(2026, 10, 1), at(2026, 10, 17)):
        notices += a.tick(t)
    flush(a)
    assert kinds(notices) == ["started", "started", "reminder"]

    b = DeadlineEngine(cal, HEADS)
    for s in topic.values():
        b.load(s)
    assert b.open_count() == 2 and b.changed() == []
    for t in hours(at(2026, 10, 17), at(2026, 11, 30)):
        notices += b.tick(t)
    got = Counter(n.notice_id for n in notices)
    assert got == {
        "sr-1:started:2026-10-20": 1,
        "sr-2:started:2026-10-22": 1,
        "sr-1:reminder:2026-10-20": 1,
        "sr-1:breach:2026-10-20": 1,
        "sr-2:reminder:2026-10-22": 1,
        "sr-2:breach:2026-10-22": 1,
    }
    # loading copies: engine b never changes what engine a holds
    assert not a.states["sr-1"].breached


def test_load_is_a_copy_and_a_reload_does_not_double_fire(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    (snapshot,) = engine.changed()
    engine.load(snapshot)
    engine.load(snapshot)
    assert engine.open_count() == 1
    assert kinds(engine.tick(at(2026, 11, 1))) == ["reminder", "breach"]
    assert engine.tick(at(2026, 11, 2)) == [] and snapshot.reminded is False


# ---- provisional deadlines across the year end


def test_provisional_deadline_rescheduled_when_the_next_year_is_published():
    cal = WorkCalendar()
    engine = DeadlineEngine(cal, HEADS)
    (n,) = engine.start(
        "sr-y", "share_request", "SR-Y", PARTY, date(2026, 12, 24), at(2026, 12, 24, 10)
    )
    assert (n.due_on, n.provisional) == (date(2027, 1, 8), True) and "provisional" in n.message
    engine.start("sr-n", "share_request", "SR-N", PARTY, date(2026, 11, 2), at(2026, 11, 2, 10))
    assert engine.recompute_provisional(at(2026, 12, 25)) == []  # nothing learned yet
    engine.changed()

    # the notice gives Monday 4 January off too
    cal.publish(PublishedYear(2027, holidays=frozenset({date(2027, 1, 1), date(2027, 1, 4)}), workdays=frozenset()))
    (r,) = engine.recompute_provisional(at(2026, 12, 28, 9))
    assert r.kind == "rescheduled" and r.deadline_id == "sr-y"
    assert (r.due_on, r.provisional) == (date(2027, 1, 11), False)
    assert r.notice_id == "sr-y:rescheduled:2027-01-11" and "2027-01-08" in r.message
    assert [s.deadline_id for s in engine.changed()] == ["sr-y"]
    assert engine.recompute_provisional(at(2026, 12, 28, 10)) == []
    s = engine.states["sr-y"]
    assert s.remind_on == date(2027, 1, 7) and not s.provisional
    engine.answer("sr-n", at(2026, 12, 28, 9))
    fired = [
        (t, n.kind) for t in hours(at(2026, 12, 28, 10), at(2027, 1, 13)) for n in engine.tick(t)
    ]
    assert fired == [(at(2027, 1, 7), "reminder"), (at(2027, 1, 12), "breach")]


def test_a_breach_counted_on_a_provisional_date_is_taken_back_if_the_date_moves():
    cal = WorkCalendar()
    engine = DeadlineEngine(cal, HEADS)
    engine.start("sr-y", "share_request", "SR-Y", PARTY, date(2026, 12, 24), at(2026, 12, 24, 10))
    assert kinds(engine.tick(at(2027, 1, 9, 0, 30))) == ["reminder", "breach"]  # the law's days off only
    cal.publish(PublishedYear(2027, holidays=frozenset({date(2027, 1, 1), date(2027, 1, 4)}), workdays=frozenset()))
    assert kinds(engine.recompute_provisional(at(2027, 1, 9, 1))) == ["rescheduled"]
    assert not engine.states["sr-y"].breached and engine.states["sr-y"].reminded
    assert [n.notice_id for n in engine.tick(at(2027, 1, 12))] == ["sr-y:breach:2027-01-11"]


# ---- idempotence and input checks


def test_start_is_idempotent(engine):
    first = engine.start(
        "sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16)
    )
    before = astuple(engine.states["sr-1"])
    assert len(first) == 1
    assert (
        engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 17))
        == []
    )
    assert (
        engine.start("sr-1", "open_request", "X", "NJ-MZ", date(2026, 1, 5), at(2026, 9, 30, 17))
        == []
    )
    assert astuple(engine.states["sr-1"]) == before
    assert len(engine.changed()) == 1 and engine.changed() == [] and engine.open_count() == 1


def test_unknown_process_or_department_is_refused(engine):
    with pytest.raises(Refusal, match="not a process with a deadline"):
        engine.start("d", "coffee_break", "C", PARTY, date(2026, 3, 2), at(2026, 3, 2))
    with pytest.raises(Refusal, match="not a department registered") as e:
        engine.start("d", "share_request", "C", "XX-NOPE", date(2026, 3, 2), at(2026, 3, 2))
    assert e.value.rule_ids == ("R-7.1",)
    assert engine.states == {} and engine.open_count() == 0


def test_a_clock_without_time_zone_is_refused(engine):
    engine.start("d", "share_request", "C", PARTY, date(2026, 3, 2), at(2026, 3, 2))
    with pytest.raises(ValueError, match="time zone"):
        engine.tick(datetime(2026, 3, 20))


def test_stale_heap_entries_do_not_pile_up(engine):
    for i in range(5000):
        engine.start(f"d{i}", "verification", f"V{i}", PARTY, date(2026, 3, 2), at(2026, 3, 2))
    for i in range(4000):
        engine.answer(f"d{i}", at(2026, 3, 3))
    assert len(engine._heap) <= 2 * engine.open_count() + 1025
    assert len(engine.tick(at(2026, 4, 30))) == 2 * 1000


def test_a_state_of_an_unknown_process_is_not_loaded(engine):
    engine.start("sr-1", "share_request", "SR-1", PARTY, date(2026, 9, 30), at(2026, 9, 30, 16))
    (s,) = engine.changed()
    s.case_type = "retired_process"
    with pytest.raises(Refusal, match="retired_process"):
        DeadlineEngine(WorkCalendar(), HEADS).load(s)
