"""`govbus audit ...`: verify the ledger's hash chains and anchors, anchor their heads, and say who received
what (R-8.1, R-39.1, R-40.1)."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime

import click

from ops.cli import common
from ops.display import when
from topics.settings import settings


@click.group()
def audit() -> None:
    """The ledger as evidence: is it intact, and who received what."""


def since_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time such as 2026-03-01 or 2026-03-01T08:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


SINCE = click.option("--since", help="From this date or time (UTC unless it says otherwise).")


@audit.command("verify")
@SINCE
def audit_verify(since: str | None) -> None:
    """Check every ledger row against the one before it and the tables against their anchors on Kafka; a row
    that does not hold is named, raised as a suspected-tampering alert, and the exit code is 1."""
    from consumers.anchors import read_anchors
    from consumers.audit import raise_alerts, verify

    s = settings()
    anchors, unreadable = common.run(read_anchors(s.bootstrap, s.topic_prefix))
    report = common.run(verify(s.dsn, anchors, since_option(since)))
    if unreadable:
        click.echo(f"{unreadable} record(s) on the anchors topic are not anchors", err=True)
    if report.intact:
        rows = ", ".join(f"{t} {n}" for t, n in report.rows.items())
        click.echo(f"ledger intact: {rows} rows checked, {report.anchors} anchors held")
        for r in report.restores:
            click.echo(f"restored from {r['backup_id']} at {when(r['restored_at'], seconds=True)}: rows after "
                       "its chain heads were replayed from the log")
        if report.superseded:
            click.echo(f"{report.superseded} anchor(s) of rows after a restore's chain heads, anchored before it, "
                       "not held (that history was replayed)")
        return
    for b in report.breaks:
        click.echo(f"suspected tampering: {b.describe()}", err=True)
    common.run(raise_alerts(s.bootstrap, report.breaks, s.topic_prefix))
    click.echo("raised as suspected_tampering on the alerts topic (R-40.1); leave the ledger as it is", err=True)
    sys.exit(1)


@audit.command("anchor")
def audit_anchor() -> None:
    """Put the chain heads on the anchors topic now (the ledger does so every minute while it writes)."""
    from consumers.anchors import anchor

    s = settings()
    n = common.run(anchor(s.bootstrap, s.dsn, s.topic_prefix))
    click.echo(f"anchored {n} table(s)")


FIELDS = ("subscriber", "delivered_at", "resource_code", "subject_id", "publisher", "basis", "grant_id", "purpose",
          "items", "event_id")


def _print(rows, fmt: str) -> None:
    if fmt == "csv":
        out = csv.writer(sys.stdout)
        out.writerow(FIELDS)
        for r in rows:
            out.writerow([";".join(r[f] or ()) if f == "items" else
                          r[f].isoformat() if f == "delivered_at" else r[f] for f in FIELDS])
        return
    if not rows:
        click.echo("no deliveries recorded")
    for r in rows:
        items = ", ".join(r["items"]) if r["items"] is not None else "(items not recorded)"
        click.echo(f"{when(r['delivered_at'], seconds=True)}  {r['subscriber']:8} {r['resource_code']:12} "
                   f"{r['subject_id']}  {r['basis']} {r['grant_id']}  purpose: {r['purpose'] or '-'}  items: {items}")


FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text", show_default=True)


@audit.command("who-received")
@click.option("--subject", help="A resident identity number or unified social credit code.")
@click.option("--resource", help="A catalog resource code.")
@SINCE
@FORMAT
def audit_who_received(subject: str | None, resource: str | None, since: str | None, fmt: str) -> None:
    """Every department that received a subject's or a resource's data: when, under which grant or subscription,
    for which purpose, which items."""
    from consumers.queries import catalog_codes, who_received
    from streams.rules.identifiers import subject_problem

    if not subject and not resource:
        raise click.UsageError("name --subject or --resource")
    problem = subject and subject_problem(subject)
    if problem:  # the bus refuses any record about such a subject: none can have been delivered
        raise click.BadParameter(f"{problem}; the bus takes no record about a subject so written",
                                 param_hint="--subject")
    dsn = settings().dsn
    rows = common.run(who_received(dsn, subject, resource, since_option(since)))
    if not rows and resource:
        import difflib

        codes = common.run(catalog_codes(dsn))
        if resource not in codes:
            near = difflib.get_close_matches(resource, codes, n=3, cutoff=0.7)
            raise click.BadParameter(f"no resource {resource!r} in the catalog the ledger holds"
                                     + (f"; did you mean {' or '.join(near)}?" if near else " (`govbus catalog list`)"),
                                     param_hint="--resource")
    _print(rows, fmt)


@audit.command("what-received")
@click.argument("department", type=common.DEPARTMENT)
@SINCE
@FORMAT
def audit_what_received(department: str, since: str | None, fmt: str) -> None:
    """Everything DEPARTMENT received, with the same particulars."""
    from consumers.queries import what_received

    _print(common.run(what_received(settings().dsn, department, since_option(since))), fmt)
