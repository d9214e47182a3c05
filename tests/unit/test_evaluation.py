"""The yearly evaluation's arithmetic on plain rows: update-cycle periods, statutory deadlines met or missed, what
counts against a department's data quality, the systems listed, scores, ranks and the county roll-up."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ops import report
from streams.rules import evaluation as ev
from streams.rules.workcalendar import WorkCalendar
from topics.departments import counties, load

BJ = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
DEPTS = load()
WIN = ev.window(2025, datetime(2026, 3, 1, tzinfo=UTC))


def at(month: int, day: int, year: int = 2025) -> datetime:
    return datetime(year, month, day, 10, tzinfo=BJ)


def entry(code: str, provider: str, cycle: str = "monthly", share: str = "unconditional", approved=None) -> dict:
    return {"resource_code": code, "provider": provider, "county": DEPTS[provider].county, "level": "city",
            "name": code, "share_attribute": share, "update_cycle": cycle, "system_code": f"{provider}-SYS",
            "approved_at": approved or at(1, 1), "first_approved": None}


def decision(kind: str, subject: str, dept: str, status: str, when: datetime, resource=None, due=None,
             late=False) -> dict:
    return {"event_id": f"{subject}:{status}", "subject_kind": kind, "subject_id": subject, "resource_code": resource,
            "department": dept, "status": status, "late": late, "due_on": due, "occurred_at": when}


def share(request: str, status: str, when: datetime, due=None, resource="R-1") -> dict:
    return {"event_id": f"{request}:{status}", "request_id": request, "department": "NJ-YB", "resource_code": resource,
            "status": status, "due_on": due, "occurred_at": when}


@pytest.mark.rule("R-13.1")
def test_update_cycle_periods_are_counted_on_the_calendar_and_daily_ones_on_working_days():
    assert [k for k, _ in ev.periods("monthly", date(2025, 1, 10), date(2025, 12, 31), CAL)] == [
        f"2025-{m:02d}" for m in range(1, 13)]
    assert [k for k, _ in ev.periods("quarterly", date(2025, 2, 5), date(2025, 12, 31), CAL)] == [
        "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]
    assert ev.periods("yearly", date(2025, 3, 3), date(2025, 12, 31), CAL) == [("2025", date(2025, 12, 31))]
    weeks = ev.periods("weekly", date(2025, 12, 29), date(2026, 1, 11), CAL)
    assert weeks == [("2026-W01", date(2026, 1, 4)), ("2026-W02", date(2026, 1, 11))]
    # the National Day week of 2025 (1-8 October) is off, Sunday 28 September and Saturday 11 October are worked
    days = [k for k, _ in ev.periods("daily", date(2025, 9, 27), date(2025, 10, 12), CAL)]
    assert days == ["2025-09-28", "2025-09-29", "2025-09-30", "2025-10-09", "2025-10-10", "2025-10-11"]
    assert ev.periods("on_change", date(2025, 1, 1), date(2025, 12, 31), CAL) == []


@pytest.mark.rule("R-13.1")
def test_a_period_is_owed_once_it_is_over_and_met_by_any_publication_in_it():
    now = datetime(2025, 6, 18, 12, tzinfo=BJ)  # mid-June: June is not over yet
    win = ev.window(2025, now)
    assert win.through == date(2025, 6, 17) and win.end == now
    pubs = [{"publisher": "NJ-GA", "resource_code": "R-1", "day": date(2025, m, d), "n": 2}
            for m, d in ((1, 5), (1, 25), (3, 31), (6, 1))]
    inputs = ev.Inputs(entries=[entry("R-1", "NJ-GA")], publications=pubs)
    c = next(r for r in ev.evaluate(inputs, DEPTS, counties(), win, CAL).departments if r.code == "NJ-GA").counts
    # January, March and June met; February, April and May missed; June counts because it is already met
    assert (c.periods_met, c.periods_expected, c.accepted) == (3, 6, 8)
    no_june = ev.Inputs(entries=[entry("R-1", "NJ-GA")], publications=pubs[:3])
    c = next(r for r in ev.evaluate(no_june, DEPTS, counties(), win, CAL).departments if r.code == "NJ-GA").counts
    assert (c.periods_met, c.periods_expected) == (2, 5)


@pytest.mark.rule("R-14.1")
def test_a_change_is_answered_by_the_next_update_in_time_late_or_not_at_all():
    approved = {"R-1": at(1, 5)}
    rows = [
        decision("change", "c1", "NJ-MZ", "accepted", at(3, 1), due="2025-03-21"),
        decision("entry", "u1", "NJ-MZ", "pending_review", at(3, 20), resource="R-1", due="2025-04-03"),
        decision("change", "c2", "NJ-MZ", "accepted", at(5, 6), due="2025-05-27"),
        decision("entry", "u2", "NJ-MZ", "pending_review", at(6, 3), resource="R-1", late=True, due="2025-06-17"),
        decision("change", "c3", "NJ-MZ", "accepted", at(11, 3), due="2025-11-21"),
        # a new entry is no update: it answers no change
        decision("entry", "n1", "NJ-MZ", "pending_review", at(11, 10), resource="R-9", due="2025-11-24"),
        # an update naming its change itself, found late by the catalog agent
        decision("entry", "u3", "NJ-RS", "pending_review", at(7, 1), resource="R-1", late=True, due="2025-07-15"),
    ]
    cases = ev.catalog_update_cases(rows, approved)
    assert [(c.party, c.outcome(date(2025, 12, 31))) for c in cases] == [
        ("NJ-MZ", "on_time"), ("NJ-MZ", "late"), ("NJ-MZ", "overdue"), ("NJ-RS", "late")]
    assert cases[2].outcome(date(2025, 11, 20)) is None  # still open the day before it is due


@pytest.mark.rule("R-14.1")
def test_reviews_are_owed_by_the_authority_of_the_submitters_level():
    rows = [
        decision("entry", "s1", "WY-MZ", "pending_review", at(5, 20), resource="R-1", due="2025-06-04"),
        decision("entry", "s1", "WY-MZ", "approved", at(6, 4, 2025).replace(hour=23)),
        decision("entry", "s2", "NJ-GA", "pending_review", at(5, 20), resource="R-2", due="2025-06-04"),
        decision("entry", "s2", "NJ-GA", "rejected", at(6, 5)),
        decision("entry", "s3", "NJ-GA", "refused", at(5, 21), resource="R-3"),  # never went to review
    ]
    cases = ev.review_cases(rows, DEPTS)
    assert [(c.party, c.outcome(date(2025, 12, 31))) for c in cases] == [("WY-SJJ", "on_time"), ("NJ-SJJ", "late")]


@pytest.mark.rule("R-26.1")
def test_a_share_request_is_answered_by_its_provider_within_its_deadline():
    rows = [share("r1", "pending", at(7, 1), "2025-07-15"), share("r1", "approved", at(7, 15)),
            share("r2", "pending", at(7, 1), "2025-07-15"), share("r2", "disputed", at(7, 10)),
            share("r2", "overturned", at(7, 20)),
            share("r3", "pending", at(7, 1), "2025-07-15"), share("r3", "rejected", at(7, 2)),
            share("r4", "pending", at(7, 1), "2025-07-15", resource="NOT-CATALOGUED")]
    cases = ev.share_request_cases(rows, {"R-1": "WY-MZ"})
    assert [(c.party, c.outcome(date(2025, 12, 31))) for c in cases] == [
        ("WY-MZ", "on_time"), ("WY-MZ", "late"), ("WY-MZ", "overdue")]


@pytest.mark.rule("R-20.1")
@pytest.mark.rule("R-45.1")
def test_quality_counts_what_the_publisher_did_and_the_systems_that_collect_again_are_listed():
    rejects = [
        {"publisher": "NJ-GA", "code": "invalid_identifier", "resource_code": None, "system_code": None, "n": 3},
        {"publisher": "NJ-GA", "code": "internal_error", "resource_code": None, "system_code": None, "n": 5},
        {"publisher": "NJ-GA", "code": "suspected_tampering", "resource_code": None, "system_code": None, "n": 2},
        {"publisher": None, "code": "undecodable", "resource_code": None, "system_code": None, "n": 4},
        {"publisher": "NJ-GA", "code": "unknown_resource", "resource_code": "X-1", "system_code": None, "n": 2},
        {"publisher": "NJ-GA", "code": "unknown_resource", "resource_code": "R-1", "system_code": None, "n": 1},
        {"publisher": "NJ-MZ", "code": "one_source_violation", "resource_code": "R-1", "system_code": "MZ-A", "n": 4},
    ]
    alerts = [{"kind": "duplicate_collection", "department": "NJ-MZ", "system_code": "MZ-B", "resource_code": "R-7",
               "subjects": 9},
              {"kind": "republication", "department": "NJ-RS", "system_code": None, "resource_code": "R-1",
               "subjects": 1}]
    pubs = [{"publisher": "NJ-GA", "resource_code": "R-1", "day": date(2025, 1, 2), "n": 14}]
    out = ev.evaluate(ev.Inputs(entries=[entry("R-1", "NJ-GA")], publications=pubs, rejects=rejects, alerts=alerts),
                      DEPTS, counties(), WIN, CAL)
    rows = {r.code: r for r in out.departments}
    ga, mz = rows["NJ-GA"].counts, rows["NJ-MZ"].counts
    # the bus's own failures and a record another published in NJ-GA's name are not NJ-GA's rejects
    assert (ga.accepted, ga.rejected) == (14, 6) and rows["NJ-GA"].measures["quality"] == pytest.approx(0.7)
    # X-1 was published without being catalogued; R-1 was catalogued by the year's end
    assert (ga.catalogued, ga.uncatalogued) == (1, 1)
    assert (mz.one_source_violations, mz.duplicate_subjects, rows["NJ-RS"].counts.security_incidents) == (4, 9, 1)
    assert [(x.department, x.system_code, x.one_source_violations, x.duplicate_subjects) for x in out.listed] == [
        ("NJ-MZ", "MZ-A", 4, 0), ("NJ-MZ", "MZ-B", 0, 9)]


@pytest.mark.rule("R-46.1")
def test_the_score_is_the_mean_of_the_measures_that_apply_and_equal_scores_share_a_rank():
    assert ev.score({"completeness": 1.0, "timeliness": None, "fulfilment": 0.5, "answers": None,
                     "quality": 0.75, "share_degree": None}) == 75.0
    assert ev.score(dict.fromkeys(ev.WEIGHTS)) is None
    assert ev.rank({"A": 50.0, "B": 80.0, "C": 50.0, "D": None, "E": 10.0}) == {"B": 1, "A": 2, "C": 2, "E": 4}


@pytest.mark.rule("R-46.1")
def test_counties_roll_up_from_their_departments_counts_and_the_city_from_all():
    entries = [entry("W-1", "WY-MZ", share="conditional"), entry("W-2", "WY-MZ", share="none"),
               entry("N-1", "NJ-GA")]
    shared = [{"publisher": "WY-MZ", "resource_code": "W-1", "subscribers": 2},
              {"publisher": "NJ-GA", "resource_code": "N-1", "subscribers": 1}]
    pubs = [{"publisher": p, "resource_code": r, "day": date(2025, m, 3), "n": 1}
            for p, r in (("WY-MZ", "W-1"), ("WY-MZ", "W-2"), ("NJ-GA", "N-1")) for m in range(1, 7)]
    inputs = ev.Inputs(entries=entries, shared=shared, publications=pubs)
    out = ev.evaluate(inputs, DEPTS, counties(), WIN, CAL)
    wy = next(r for r in out.counties if r.code == "WY")
    assert (wy.counts.catalogued, wy.counts.shareable, wy.counts.shared) == (2, 1, 1)
    assert (wy.counts.periods_met, wy.counts.periods_expected) == (12, 24)
    assert wy.measures["share_degree"] == 0.5 and wy.score == 75.0 and wy.rank == 1  # (1 + .5 + 1 + .5) / 4
    # the city's ratio is of the summed counts, not a mean of the counties' ratios
    assert out.total.measures["share_degree"] == pytest.approx(2 / 3)
    assert out.total.measures["fulfilment"] == pytest.approx(18 / 36)
    only = ev.evaluate(inputs, DEPTS, counties(), WIN, CAL, county="WY")
    assert [r.code for r in only.departments] == ["WY-MZ", "WY-SJJ"] and only.total.code == "WY"
    assert [r.code for r in only.counties] == ["WY"] and only.total.score == wy.score


@pytest.mark.rule("R-46.1")
def test_a_year_without_records_has_no_data_and_a_deadline_counts_in_the_year_it_falls_due():
    assert not ev.evaluate(ev.Inputs(), DEPTS, counties(), WIN, CAL).has_data
    rows = [share("r1", "pending", at(12, 26), "2026-01-12"), share("r0", "pending", at(12, 20, 2024), "2025-01-06")]
    out = ev.evaluate(ev.Inputs(entries=[entry("R-1", "WY-MZ", approved=at(6, 1, 2024))], share_decisions=rows),
                      DEPTS, counties(), WIN, CAL)
    wy = next(r for r in out.departments if r.code == "WY-MZ").counts
    assert (wy.requests_due, wy.requests_overdue) == (1, 1)


def test_the_terminal_table_fits_100_columns_with_chinese_names():
    pubs = [{"publisher": d, "resource_code": f"{d}-R", "day": date(2025, 3, 3), "n": 1} for d in DEPTS]
    entries = [entry(f"{d}-R", d, cycle="yearly") for d in DEPTS]
    out = ev.evaluate(ev.Inputs(entries=entries, publications=pubs), DEPTS, counties(), WIN, CAL)
    text = report.text(out)
    assert max(report.width(line) for line in text.splitlines()) <= 100
    assert "内江市大数据中心（…" in text and report.width("内江市") == 6
