from datetime import date

import pytest

from streams.workcalendar import PublishedYear, WorkCalendar, year_from_record

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
    assert (str(due), due.provisional) == ("2027-01-07 provisional", True)
    assert cal.is_workday(D("2027-01-01")) is None
    cal.publish(PublishedYear(2027, frozenset({D("2027-01-01")}), frozenset()))
    due = cal.add_working_days(D("2026-12-24"), 10)
    assert (str(due), due.provisional) == ("2027-01-08", False)
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
