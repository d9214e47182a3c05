"""`govbus evaluate`: the yearly evaluation of departments and counties (R-46.1) from the ledger and the catalog,
as a terminal table, CSV, an HTML report with charts, or JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ops.cli import common
from topics.settings import settings


@click.command()
@click.option("--year", type=int, required=True, help="The year evaluated, e.g. 2025.")
@click.option("--county", default=None, help="One county, district or zone (e.g. WY) instead of the whole city.")
@click.option("--csv", "csv_path", default=None, metavar="FILE", help="Write one row per department to FILE.")
@click.option("--html", "html_path", default=None, metavar="FILE", help="Write the report with its charts to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as one JSON object.")
def evaluate(year: int, county: str | None, csv_path: str | None, html_path: str | None, as_json: bool) -> None:
    """Evaluate every department and county on the year: catalog completeness and timeliness, responsibility
    list fulfilment, share requests answered in time, data quality, share degree; ranked (R-46.1)."""
    from consumers.queries import evaluation_inputs
    from ops import report
    from streams.rules.evaluation import Inputs, evaluate, window
    from streams.rules.workcalendar import WorkCalendar
    from topics.departments import counties, load

    known = counties()
    if county is not None and (problem := common.unknown_county(county)):
        raise click.ClickException(problem)
    now = datetime.now(UTC)
    if not 2000 <= year <= now.year:
        raise click.ClickException(f"{year} cannot be evaluated: give a year from 2000 to {now.year}")
    win = window(year, now)
    rows = common.run(evaluation_inputs(settings().dsn, win.start, win.end))
    ev = evaluate(Inputs(**rows), load(), known, win, WorkCalendar(), county)
    if not ev.has_data:
        where = f" in {county}" if county else ""
        raise click.ClickException(f"nothing recorded for {year}{where}: no catalog entry, publication or case "
                                   "to evaluate")
    if csv_path:
        report.write_csv(ev, csv_path)
    if html_path:
        report.write_html(ev, html_path)
    click.echo(report.as_json(ev) if as_json else report.text(ev))
