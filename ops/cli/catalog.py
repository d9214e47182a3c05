"""`govbus catalog ...`: submit, review and read the catalog as a department officer would."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import click

from ops import events
from ops.cli import common
from ops.display import print_catalog_decisions, when
from topics.settings import settings


def _sent(keyed: list[tuple[bytes, str, dict]], wait: float) -> None:
    """Send catalog inputs, print the decisions on them and exit 1 if one was refused."""
    from ops.kafka_io import submit_and_wait

    decisions = common.run(submit_and_wait(keyed, wait))
    print_catalog_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


@click.group()
def catalog() -> None:
    """The government data resource catalog (政务数据资源目录)."""


@catalog.command()
@click.argument("path")
@click.option("--as", "department", required=True, help="Submitting department, e.g. NJ-GA.", type=common.DEPARTMENT)
@click.option("--wait", type=float, default=20.0, show_default=True, help="Seconds to wait for the decisions.")
def submit(path: str, department: str, wait: float) -> None:
    """Submit catalog entries from a YAML or JSON file: one entry, a list, or {entries: [...]}."""
    from ops.kafka_io import submit_and_wait

    recs = events.submissions_from_file(events.read_file(path), department, path)
    decisions = common.run(submit_and_wait(
        [(department.encode(), "govbus.catalog.CatalogSubmission", rec) for rec in recs], wait))
    for rec in recs:
        click.echo(f"submitted {rec['entry']['resource_code'] or '(no code)'} as {rec['event_id']}")
    print_catalog_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


@catalog.command()
@click.argument("submission_id")
@click.option("--as", "reviewer", required=True, help="Reviewing authority, e.g. NJ-SJJ.", type=common.DEPARTMENT)
@click.option("--person", required=True, help="Name of the reviewing officer.")
@click.option("--approve", "decision", flag_value="approve", help="Approve the submission.")
@click.option("--reject", "decision", flag_value="reject", help="Reject it (give --reason).")
@click.option("--reason", default=None)
@click.option("--wait", type=float, default=20.0, show_default=True)
def review(submission_id: str, reviewer: str, person: str, decision: str | None, reason: str | None,
           wait: float) -> None:
    """Approve or reject a submission (the authority, within 10 working days: R-14.1)."""
    from ops.kafka_io import review_and_wait

    if decision is None:
        raise click.UsageError("say --approve or --reject")
    rec = events.catalog_review(submission_id, reviewer, person, decision, reason)
    decisions = common.run(review_and_wait(rec, wait))
    print_catalog_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions) or not decisions:
        sys.exit(1)


@catalog.command("register-system")
@click.argument("path")
@click.option("--as", "department", required=True, type=common.DEPARTMENT)
@click.option("--wait", type=float, default=20.0, show_default=True)
def register_system(path: str, department: str, wait: float) -> None:
    """Register an information system (code, name, stage, interfaces, resource_codes) (R-13.2)."""
    rec = events.system_registration(events.read_file(path), department)
    _sent([(department.encode(), "govbus.catalog.SystemRegistration", rec)], wait)


@catalog.command()
@click.argument("path")
@click.option("--as", "department", required=True, type=common.DEPARTMENT)
@click.option("--wait", type=float, default=20.0, show_default=True)
def demand(path: str, department: str, wait: float) -> None:
    """Submit a demand list (需求清单): resources the department needs, each with its purpose."""
    rec = events.demand_list(events.read_file(path), department)
    _sent([(department.encode(), "govbus.catalog.DemandList", rec)], wait)


@catalog.command()
@click.option("--department", required=True, type=common.DEPARTMENT,
              help="Department whose catalog must follow the change.")
@click.option("--date", "change_date", required=True, help="Date of the change, YYYY-MM-DD.")
@click.option("--kind", "change_kind", type=click.Choice(["law", "function", "system"]), required=True)
@click.option("--description", required=True)
@click.option("--as", "reported_by", default="NJ-SJJ", show_default=True, type=common.DEPARTMENT)
@click.option("--wait", type=float, default=20.0, show_default=True)
def change(department: str, change_date: str, change_kind: str, description: str, reported_by: str,
           wait: float) -> None:
    """Record a change of law, function or system: the department's update is due in 15 working days."""
    rec = events.catalog_change(department, change_date, change_kind, description, reported_by)
    _sent([(department.encode(), "govbus.catalog.CatalogChange", rec)], wait)


@catalog.command("list")
@click.option("--county", default=None, type=common.COUNTY, help="Only the county catalog, e.g. WY.")
@click.option("--provider", default=None, type=common.DEPARTMENT)
def list_entries(county: str | None, provider: str | None) -> None:
    """The approved catalog: the city's (everything), or one county's."""
    from consumers.queries import catalog_entries

    rows = common.run(catalog_entries(settings().dsn, county, provider))
    for r in rows:
        click.echo(f"{r['resource_code']:16} v{r['version']:<3} {r['provider']:9} {r['county'] or 'city':5} "
                   f"share={r['share_attribute']:13} open={r['open_attribute']:13} {r['name']}")
    click.echo(f"{len(rows)} {'entry' if len(rows) == 1 else 'entries'}")


@catalog.command()
@click.argument("resource_code")
def show(resource_code: str) -> None:
    """One entry, in full."""
    import yaml

    from consumers.queries import catalog_entry

    r = common.run(catalog_entry(settings().dsn, resource_code))
    if r is None:
        raise click.ClickException(f"{resource_code} is not in the approved catalog")
    click.echo(f"{r['resource_code']} v{r['version']}, approved {when(r['approved_at'])[:10]} by {r['approved_by']}")
    click.echo(yaml.safe_dump(json.loads(r["content"]), allow_unicode=True, sort_keys=False))


@catalog.command()
@click.argument("department", type=common.DEPARTMENT)
def responsibilities(department: str) -> None:
    """A department's collection responsibility list (采集责任清单, R-13.1)."""
    from consumers.queries import responsibility_list

    rows = common.run(responsibility_list(settings().dsn, department))
    for r in rows:
        click.echo(f"{r['resource_code']:16} {r['update_cycle']:10} {r['system_code']:12} {r['name']}")
    click.echo(f"{len(rows)} resources")


@catalog.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="-")
def export(fmt: str, output: str) -> None:
    """Export the approved catalog as CSV or JSON."""
    from consumers.queries import catalog_entries

    rows = common.run(catalog_entries(settings().dsn))
    entries = [{"version": r["version"], "level": r["level"], "county": r["county"],
                "approved_at": r["approved_at"].isoformat(), "approved_by": r["approved_by"],
                **json.loads(r["content"])} for r in rows]
    if fmt == "json":
        text = json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
    else:
        buf = io.StringIO()
        cols = ["resource_code", "version", "level", "county",
                *[c for c in events.CONTENT_FIELDS if c != "resource_code"], "approved_at", "approved_by"]
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for e in entries:
            e["data_items"] = "; ".join(
                f"{i['name']}:{i['type']}" + ("*" if i["subject_id"] else "") for i in e["data_items"])
            w.writerow({c: e.get(c) for c in cols})
        text = buf.getvalue()
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{len(entries)} entries written to {output}")


@catalog.command()
@click.option("--department", default=None, type=common.DEPARTMENT)
@click.option("--limit", default=50, show_default=True)
def decisions(department: str | None, limit: int) -> None:
    """Recent decisions on catalog inputs, newest first (e.g. to find submissions awaiting review)."""
    from consumers.queries import catalog_decisions

    rows = common.run(catalog_decisions(settings().dsn, department, limit))
    print_catalog_decisions([dict(r) for r in rows])
