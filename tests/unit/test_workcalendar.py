import re
from datetime import date, datetime, timedelta

import pytest

from streams.rules.workcalendar import PublishedYear, WorkCalendar, year_from_record

D = date.fromisoformat


@pytest.mark.rule("R-26.1")
def test_received_on_the_eve_of_national_day():
    # Wednesday 2026-09-30; Oct 1-7 off; Saturday 10-10 is an adjusted working day
    assert str(WorkCalendar().add_working_days(D("2026-09-30"), 10)) == "2026-10-20"


@pytest.mark.rule("R-26.1")
def test_received_the_day_before_an_adjusted_working_saturday_across_spring_festival():
    cal = WorkCalendar()
    assert cal.is_workday(D("2026-02-14")) is True  # Saturday, worked
    assert str(cal.add_working_days(D("2026-02-13"), 1)) == "2026-02-14"
    # Feb 15-23 off for the Spring Festival, Saturday 02-28 worked
    assert str(cal.add_working_days(D("2026-02-13"), 10)) == "2026-03-05"


@pytest.mark.rule("R-14.1")
def test_the_day_of_receipt_does_not_count():
    cal = WorkCalendar()
    assert str(cal.add_working_days(D("2026-11-25"), 1)) == "2026-11-26"
    assert str(cal.add_working_days(D("2026-11-27"), 1)) == "2026-11-30"  # Friday -> Monday


@pytest.mark.rule("R-14.1")
def test_across_the_year_end_into_an_unpublished_year_is_provisional_until_published():
    cal = WorkCalendar()
    due = cal.add_working_days(D("2026-12-24"), 10)
    assert (str(due), due.provisional) == ("2027-01-08 provisional", True)  # New Year's Day off by law
    assert cal.is_workday(D("2027-01-01")) is None
    # the year's notice gives Monday 4 January off as well
    cal.publish(PublishedYear(2027, frozenset({D("2027-01-01"), D("2027-01-04")}), frozenset()))
    due = cal.add_working_days(D("2026-12-24"), 10)
    assert (str(due), due.provisional) == ("2027-01-11", False)
    # a count that stays inside known years was never provisional
    assert not cal.add_working_days(D("2026-12-01"), 3).provisional


def test_published_years_override_and_validate():
    cal = WorkCalendar()
    year = year_from_record({"year": 2027, "holidays": ["2027-02-08"], "workdays": ["2027-02-06"]})
    cal.publish(year)
    assert cal.is_workday(D("2027-02-06")) is True  # a Saturday worked
    assert cal.is_workday(D("2027-02-08")) is False  # a Monday off
    assert cal.is_workday(D("2027-02-07")) is False  # an ordinary Sunday
    with pytest.raises(ValueError, match="not in 2027"):
        cal.publish(year_from_record({"year": 2027, "holidays": ["2028-01-01"], "workdays": []}))
    with pytest.raises(ValueError, match="both a holiday and a working day"):
        cal.publish(year_from_record({"year": 2027, "holidays": ["2027-02-06"], "workdays": ["2027-02-06"]}))


def test_working_days_before_for_reminders():
    cal = WorkCalendar()
    assert cal.working_days_before(D("2026-10-09"), 2) == D("2026-09-30")  # over the National Day week


def test_a_count_past_the_ends_of_the_calendar_is_a_value_error_not_an_overflow():
    # a ValueError is what the deadline service rejects a command for; an OverflowError would stop its loop
    cal = WorkCalendar()
    with pytest.raises(ValueError, match="counting 1 working days after 9999-12-31 goes beyond 9999-12-31"):
        cal.add_working_days(D("9999-12-31"), 1)
    with pytest.raises(ValueError, match="counting 2 working days before 0001-01-02 goes beyond 0001-01-01"):
        cal.working_days_before(D("0001-01-02"), 2)


@pytest.mark.parametrize("rec, message", [
    ({"year": float("inf")}, "year inf is not a year"),
    ({"year": True}, "year True is not a year"),
    ({"year": "twenty"}, "year 'twenty' is not a year"),
    ({"year": 10_000}, "year 10000 is not a year"),
    ({"year": 2027, "holidays": ["2027-01-01T00:00:00"]}, "holidays: '2027-01-01T00:00:00' is not a date"),
    ({"year": 2027, "workdays": [datetime(2027, 2, 6)]}, "workdays: 2027-02-06 00:00:00 has a time of day"),
    ({"year": 2027, "holidays": "2027-01-01"}, "holidays is a list of dates"),
    ({"year": 2027, "holidays": [20270101]}, "holidays: 20270101 is not a date"),
])
def test_a_calendar_record_that_cannot_be_read_is_a_value_error_naming_the_field(rec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        year_from_record(rec)


def test_a_calendar_file_may_give_the_year_as_text_and_dates_as_dates():
    assert year_from_record({"year": "2027", "holidays": [date(2027, 1, 1)]}) == PublishedYear(
        2027, frozenset({D("2027-01-01")}), frozenset())


@pytest.mark.rule("R-14.1")
def test_an_unpublished_year_keeps_the_days_off_the_law_fixes_for_every_year():
    import chinese_calendar

    from streams.rules.workcalendar import provisional_workday, statutory_days_off

    # the amended law's 13 days, and the days made up for those on a weekend: in the years the package knows
    # under it, each is a day off, and the year has exactly the official number of working days
    for year in (2025, 2026):
        first = D(f"{year}-01-01")
        days = [first + timedelta(days=n) for n in range((D(f"{year + 1}-01-01") - first).days)]
        assert all(not chinese_calendar.is_workday(d) for d in statutory_days_off(year))
        assert sum(map(provisional_workday, days)) == sum(map(chinese_calendar.is_workday, days)) == 248
    off = statutory_days_off(2031)
    assert {D("2031-01-01"), D("2031-01-22"), D("2031-01-23"), D("2031-01-24"), D("2031-01-25"), D("2031-04-05"),
            D("2031-05-01"), D("2031-05-02"), D("2031-06-24"), D("2031-10-01"), D("2031-10-02"),
            D("2031-10-03")} <= off
    assert D("2031-01-27") in off  # Saturday 25 January (初三) made up on Monday 27
    cal = WorkCalendar()
    due = cal.add_working_days(D("2030-12-31"), 1)
    assert (str(due), due.provisional) == ("2031-01-02 provisional", True)
    assert str(cal.add_working_days(D("2027-09-30"), 1)) == "2027-10-06 provisional"  # 1-3 Oct, two made up
    assert statutory_days_off(2150) >= {D("2150-01-01"), D("2150-10-01")}  # beyond the lunar tables: fixed dates
