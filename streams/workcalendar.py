"""Official PRC working days, and deadlines counted in them.

Years known to `chinese-calendar` come from it; later years are published by the authority
as calendar events (the State Council's yearly notice: holidays and adjusted working
weekends). A count that touches a year nobody has published yet is computed with weekends
only and marked provisional, never silently treated as final; such deadlines are recomputed
once the year is published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar
from chinese_calendar import constants as _cc

BUILTIN_YEARS = frozenset(d.year for d in _cc.holidays)


@dataclass(frozen=True)
class PublishedYear:
    year: int
    holidays: frozenset[date]  # statutory days off that fall on weekdays (or any day off)
    workdays: frozenset[date]  # adjusted working weekends (调休上班)


@dataclass(frozen=True)
class Deadline:
    due: date
    provisional: bool

    def __str__(self) -> str:
        return self.due.isoformat() + (" provisional" if self.provisional else "")


class WorkCalendar:
    def __init__(self, published: Iterable[PublishedYear] = ()):
        self.published: dict[int, PublishedYear] = {}
        for y in published:
            self.publish(y)

    def publish(self, year: PublishedYear) -> None:
        for d in (*year.holidays, *year.workdays):
            if d.year != year.year:
                raise ValueError(f"{d.isoformat()} is not in {year.year}")
        if year.holidays & year.workdays:
            both = ", ".join(sorted(d.isoformat() for d in year.holidays & year.workdays))
            raise ValueError(f"{both}: a day cannot be both a holiday and a working day")
        self.published[year.year] = year

    def knows(self, year: int) -> bool:
        return year in self.published or year in BUILTIN_YEARS

    def is_workday(self, d: date) -> bool | None:
        """True/False for a known year; None when the year's calendar is not yet known."""
        y = self.published.get(d.year)
        if y is not None:
            if d in y.workdays:
                return True
            if d in y.holidays:
                return False
            return d.weekday() < 5
        if d.year in BUILTIN_YEARS:
            return chinese_calendar.is_workday(d)
        return None

    def add_working_days(self, received: date, days: int) -> Deadline:
        """The `days`-th working day after `received` (the day of receipt does not count)."""
        if days < 1:
            raise ValueError("a deadline is at least one working day")
        d, counted, provisional = received, 0, False
        while counted < days:
            d += timedelta(days=1)
            work = self.is_workday(d)
            if work is None:
                provisional = True
                work = d.weekday() < 5
            counted += work
        return Deadline(d, provisional)

    def working_days_before(self, due: date, days: int) -> date:
        """The working day `days` working days before `due` (for reminders); weekends in unknown years."""
        d, counted = due, 0
        while counted < days:
            d -= timedelta(days=1)
            work = self.is_workday(d)
            counted += work if work is not None else d.weekday() < 5
        return d


def year_from_record(rec: dict) -> PublishedYear:
    """A PublishedYear from a govbus.calendar.CalendarYear event (or a publication file)."""
    def dates(values) -> frozenset[date]:
        return frozenset(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values or ())

    return PublishedYear(int(rec["year"]), dates(rec.get("holidays")), dates(rec.get("workdays")))
