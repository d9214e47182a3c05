"""`govbus calendar ...` and `govbus deadlines ...`: the official working-day calendar and the statutory deadlines
counted in it."""

from __future__ import annotations

import logging
import sys
import uuid
from datetime import UTC, datetime

import click

from ops.cli import common
from ops.display import when
from topics.settings import settings


async def _calendar():
    from ops.kafka_io import published_calendar
    from streams.rules.workcalendar import WorkCalendar

    try:
        return await published_calendar()
    except Exception as exc:  # the built-in years still answer; say that later ones are missing
        click.echo(f"warning: published calendars unavailable ({exc or type(exc).__name__}); "
                   "only the built-in years are known", err=True)
        return WorkCalendar()


@click.group()
def calendar() -> None:
    """The official working-day calendar and deadlines counted in it."""


@calendar.command("due")
@click.argument("received")
@click.argument("days", type=click.IntRange(min=1))
def calendar_due(received: str, days: int) -> None:
    """The deadline DAYS working days after RECEIVED (the day of receipt does not count)."""
    day = common.date_argument(received)
    cal = common.run(_calendar())
    try:
        click.echo(str(cal.add_working_days(day, days)))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@calendar.command("is-workday")
@click.argument("day")
def calendar_is_workday(day: str) -> None:
    """`workday` or `rest day` (followed by `provisional` for a year not yet published)."""
    from streams.rules.workcalendar import provisional_workday

    d = common.date_argument(day)
    cal = common.run(_calendar())
    work = cal.is_workday(d)
    if work is None:
        click.echo(("workday" if provisional_workday(d) else "rest day") + " provisional")
    else:
        click.echo("workday" if work else "rest day")


@calendar.command("draft")
@click.argument("year", type=click.IntRange(1950, 2999))
def calendar_draft(year: int) -> None:
    """Print a calendar file for YEAR to start `calendar publish` from: the days off the law fixes for every year,
    as the deadlines count them until the year is published. Edit it to the State Council's notice (the days it
    moves, the weekends it makes working days) and name the notice as its source."""
    from streams.rules.workcalendar import statutory_days_off

    off = sorted(d for d in statutory_days_off(year) if d.weekday() < 5)
    click.echo(f"# {year}: the days off fixed by 《全国年节及纪念日放假办法》, and the weekdays that make up those\n"
               "# falling on a weekend. Change it to what the year's notice says before publishing it:\n"
               "# holidays: every weekday off; workdays: every Saturday or Sunday worked (调休上班).\n"
               f"year: {year}\n"
               f"source: 国务院办公厅关于{year}年部分节假日安排的通知\n"
               "holidays:\n" + "".join(f"  - {d.isoformat()}\n" for d in off) +
               "workdays: []", nl=True)


@calendar.command("publish")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "publisher", default="NJ-SJJ", show_default=True, type=common.DEPARTMENT,
              help="The city's authority, which publishes the calendar.")
@click.option("--replace-built-in", is_flag=True,
              help="Publish a year the built-in calendar (chinese-calendar) already holds, replacing it.")
def calendar_publish(path: str, publisher: str, replace_built_in: bool) -> None:
    """Publish a year's calendar from a YAML or JSON file (year, source, holidays, workdays): the State Council's
    notice for a year the built-in calendar does not hold yet (`govbus calendar draft YEAR` to start from)."""
    from ops.events import calendar_year_from_file, read_file
    from ops.kafka_io import send_events
    from streams.rules.workcalendar import BUILTIN_YEARS
    from topics.departments import load
    from topics.registry import CALENDAR

    dept = load()[publisher]
    if (dept.kind, dept.level) != ("authority", "city"):
        raise click.BadParameter(f"{publisher} is not the city's authority: the calendar is the authority's to "
                                 "publish", param_hint="--as")
    rec = calendar_year_from_file(read_file(path), publisher, path)
    if rec["year"] in BUILTIN_YEARS and not replace_built_in:
        raise click.ClickException(f"{rec['year']} is a year the built-in calendar already holds from the State "
                                   "Council's notice: deadlines in it are final. Publish it only to correct that, "
                                   "with --replace-built-in")
    common.run(send_events(CALENDAR, [(str(rec["year"]).encode(), "govbus.calendar.CalendarYear", rec)]))
    click.echo(f"published the {rec['year']} calendar: {len(rec['holidays'])} days off, "
               f"{len(rec['workdays'])} adjusted working days")


@click.group()
def deadlines() -> None:
    """Statutory deadlines in working days: the service, extensions, notices."""


@deadlines.command("run")
def deadlines_run() -> None:
    """Run the deadline service until interrupted."""
    from streams.deadline_service import run_service

    logging.getLogger("govbus").setLevel(logging.INFO)
    common.serve_metrics("deadlines", "the deadline service")
    s = settings()
    common.run(common.until_signalled(lambda stop: run_service(s, stop)))


@deadlines.command("extend")
@click.argument("deadline_id")
@click.option("--days", type=click.IntRange(min=1), required=True)
@click.option("--approved-by", required=True, help="Name of the department's principal head (R-7.1).")
@click.option("--as", "actor", required=True, help="Department asking for the extension.", type=common.DEPARTMENT)
@click.option("--wait", type=float, default=20.0, show_default=True, help="Seconds to wait for the answer.")
def deadlines_extend(deadline_id: str, days: int, approved_by: str, actor: str, wait: float) -> None:
    """Extend a deadline where the measures allow it (once, within the limit, with the head's approval); prints the
    deadline service's answer and exits 1 if it refused."""
    from ops.kafka_io import deadline_states, send_extension
    from streams.rules.deadlines import command_record

    s = settings()
    if deadline_id not in {d["deadline_id"] for d in common.run(deadline_states(s.bootstrap, s.topic_prefix))}:
        raise click.ClickException(f"there is no deadline {deadline_id!r}; `govbus deadlines list --party {actor}` "
                                   f"lists {actor}'s open ones")
    rec = command_record(datetime.now(UTC), "extend", deadline_id, actor, extension_days=days, approved_by=approved_by)
    rec["event_id"] = uuid.uuid4().hex  # each request is its own: a second one is refused, not dropped
    answers = common.run(send_extension(rec, wait))
    for n in answers:
        click.echo(f"{when(n['occurred_at'])} {n['kind']} [{n['rule_id']}] {n['message']}")
    if not answers:
        raise click.ClickException(f"no answer from the deadline service within {wait:g} s; "
                                   f"`govbus deadlines list --party {actor} --all` tells what became of it once "
                                   "the service runs")
    if any(n["kind"] == "refused" for n in answers):
        sys.exit(1)


@deadlines.command("list")
@click.option("--party", default=None, help="Only deadlines this department must meet.", type=common.DEPARTMENT)
@click.option("--all", "show_all", is_flag=True, help="Include closed deadlines.")
def deadlines_list(party: str | None, show_all: bool) -> None:
    """Deadlines and their state, soonest first."""
    from ops.kafka_io import deadline_states

    s = settings()
    states = [d for d in common.run(deadline_states(s.bootstrap, s.topic_prefix))
              if (show_all or not d["closed"]) and (party is None or d["party"] == party)]
    for d in sorted(states, key=lambda d: d["due_on"]):
        flags = [f for f in ("reminded", "breached", "closed", "provisional") if d[f]]
        click.echo(f"{d['due_on']}  {d['party']:8} {d['case_type']:22} {d['deadline_id']}  {' '.join(flags)}")
    click.echo(f"{len(states)} deadlines")


@deadlines.command("notices")
@click.option("--party", default=None)
@click.option("--limit", default=50, show_default=True)
def deadlines_notices(party: str | None, limit: int) -> None:
    """Recent reminders, breaches and other deadline notices (from the ledger)."""
    from consumers.queries import deadline_notices

    for r in common.run(deadline_notices(settings().dsn, party, limit)):
        click.echo(f"{when(r['occurred_at'])} {r['kind']:11} {r['party']:8} [{r['rule_id']}] {r['message']}")
