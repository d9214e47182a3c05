"""Official PRC working days, and deadlines counted in them; a year not yet published makes a deadline
provisional, never silently final. Until then its days off are the ones the law fixes for every year
(`statutory_days_off`), without the adjusted weekends that only the State Council's yearly notice sets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import chinese_calendar
from chinese_calendar import constants as _cc
from lunardate import LunarDate

from schemas.errors import CodecError

BUILTIN_YEARS = frozenset(d.year for d in _cc.holidays)
log = logging.getLogger("govbus.calendar")


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
        """The `days`-th working day after `received` (the day of receipt does not count); provisional when it
        counts a day of a year not yet known, as `provisional_workday` has it."""
        if days < 1:
            raise ValueError("a deadline is at least one working day")
        d, counted, provisional = received, 0, False
        while counted < days:
            d = _next_day(d, +1, f"{days} working days after {received}")
            work = self.is_workday(d)
            if work is None:
                provisional = True
                work = provisional_workday(d)
            counted += work
        return Deadline(d, provisional)

    def working_days_before(self, due: date, days: int) -> date:
        """The working day `days` working days before `due` (for reminders); `provisional_workday` in unknown
        years."""
        d, counted = due, 0
        while counted < days:
            d = _next_day(d, -1, f"{days} working days before {due}")
            work = self.is_workday(d)
            counted += work if work is not None else provisional_workday(d)
        return d


def provisional_workday(d: date) -> bool:
    """A working day as far as the law says before the year's notice: a weekday that is no statutory day off."""
    return d.weekday() < 5 and d not in statutory_days_off(d.year)


@lru_cache(maxsize=64)
def statutory_days_off(year: int) -> frozenset[date]:
    """The days off that 《全国年节及纪念日放假办法》 (as amended in 2024, from 2025) fixes for every year: 元旦
    1 January; 春节 the lunar new year's eve and its first three days; 清明 the day of the solar term; 劳动节 1 and 2
    May; 端午 the fifth of the fifth lunar month; 中秋 the fifteenth of the eighth; 国庆 1 to 3 October. Each that
    falls on a Saturday or Sunday is made up on a working day (its article 6), here the next weekday not already
    off. The yearly notice moves days about (调休) but not their number: over 2025 and 2026 this gives the official
    count of working days exactly (tests/unit/test_workcalendar.py). Beyond the lunar tables (2099) only the fixed
    dates are known."""
    fixed = {date(year, 1, 1), date(year, 5, 1), date(year, 5, 2), date(year, 10, 1), date(year, 10, 2),
             date(year, 10, 3)}
    try:
        new_year = LunarDate(year, 1, 1).toSolarDate()
        lunar = {new_year + timedelta(days=n) for n in (-1, 0, 1, 2)}
        lunar |= {LunarDate(year, 5, 5).toSolarDate(), LunarDate(year, 8, 15).toSolarDate()}
        lunar |= {d for d, term in chinese_calendar.get_solar_terms(date(year, 4, 1), date(year, 4, 30))
                  if term == "清明"}
    except (ValueError, IndexError, KeyError, NotImplementedError):  # outside the lunar and solar-term tables
        lunar = set()
    days = {d for d in fixed | lunar if d.year == year}
    off = set(days)
    for d in sorted(days):
        if d.weekday() >= 5:
            made_up = d
            while made_up.weekday() >= 5 or made_up in off:
                made_up += timedelta(days=1)
            if made_up.year == year:
                off.add(made_up)
    return frozenset(off)


def _next_day(d: date, step: int, counting: str) -> date:
    try:
        return d + timedelta(days=step)
    except OverflowError:
        raise ValueError(f"counting {counting} goes beyond {date.max if step > 0 else date.min}, "
                         "where the calendar ends") from None


def _year(value: Any) -> int:
    year = None
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            year = int(value)
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        year = int(value)
    if year is None or not MINYEAR <= year <= MAXYEAR:
        raise ValueError(f"year {value!r} is not a year: give it as a number, e.g. 2027")
    return year


def _days(values: Any, field: str) -> frozenset[date]:
    if values is None:
        return frozenset()
    if not isinstance(values, (list, tuple, set, frozenset)):
        one = f"{values}: write [{values}] for one day" if isinstance(values, date) else repr(values)
        raise ValueError(f"{field} is a list of dates (YYYY-MM-DD), not {one}")
    days = set()
    for v in values:
        if isinstance(v, datetime):  # a datetime is a date too, and would be published with its time
            raise ValueError(f"{field}: {v} has a time of day; give the date alone, YYYY-MM-DD")
        if isinstance(v, str):
            try:
                v = date.fromisoformat(v)
            except ValueError:
                pass
        if not isinstance(v, date):
            raise ValueError(f"{field}: {v!r} is not a date of the form YYYY-MM-DD")
        days.add(v)
    return frozenset(days)


def year_from_record(rec: Mapping[str, Any]) -> PublishedYear:
    """A PublishedYear from a govbus.calendar.CalendarYear event (or a publication file); ValueError says what
    is wrong with one that cannot be read."""
    return PublishedYear(_year(rec.get("year")), _days(rec.get("holidays"), "holidays"),
                         _days(rec.get("workdays"), "workdays"))


def publish_event(calendar: WorkCalendar, codec: Any, value: bytes) -> bool:
    """Add a govbus.calendar.CalendarYear event read from the calendar topic to `calendar`. One that cannot be
    read is logged and skipped (the year stays provisional until published again), never raised: the topic is
    compacted, and a reader that stopped at it would stop at it on every start."""
    rec: Mapping[str, Any] = {}
    try:
        rec = codec.decode(value, "govbus.calendar.CalendarYear").record
        calendar.publish(year_from_record(rec))
    except (CodecError, ValueError) as exc:
        log.error("skipped the calendar of %s (event %s): %s; the authority publishes it again with "
                  "`govbus calendar publish`", rec.get("year", "an unknown year"), rec.get("event_id", "?"), exc)
        return False
    return True
