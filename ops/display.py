"""What the bus answers, as the lines an officer reads: feed records, catalog decisions and share decisions,
printed alike by the CLI and the demo."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

BEIJING = ZoneInfo("Asia/Shanghai")  # the time the measures' days are counted in


def when(at: datetime, seconds: bool = False) -> str:
    """A moment as an officer reads it: Beijing time, marked so (`2026-12-07 23:17+08`), whatever the machine's zone;
    a naive datetime is taken as UTC, as the ledger and the topics keep time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo("UTC"))
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S+08" if seconds else "%Y-%m-%d %H:%M+08")


def format_feed_record(rec) -> str:
    """One line of a feed: who sent what to whom under which grant, and whether its digest holds."""
    items = ", ".join(f"{k}={v}" for k, v in sorted(rec.items.items()))
    check = "ok" if rec.verify() else "DIGEST MISMATCH"
    marks = ""
    if rec.flags:
        marks = f" [{', '.join(rec.flags)}: {', '.join(rec.case_ids)}]"
    if rec.correction_of:
        marks += f" corrects {rec.correction_of}"
    return (f"{when(rec.delivered_at, seconds=True)} {rec.publisher} -> {rec.subscriber} "
            f"{rec.resource_code} {rec.subject_id} {{{items}}} grant={rec.grant_id} {check}{marks}")


def format_open_record(rec) -> str:
    """One line of an open feed: what, from which department, retrieved when, desensitized as declared."""
    items = ", ".join(f"{k}={v}" for k, v in sorted(rec.items.items()))
    check = "ok" if rec.verify() else "DIGEST MISMATCH"
    under = f" grant={rec.grant_id}" if rec.grant_id else ""
    return (f"{when(rec.delivered_at, seconds=True)} {rec.resource_code} {rec.resource_name} {{{items}}} "
            f"source={rec.source_department} {rec.source_department_name} retrieved={rec.retrieved_on} "
            f"{rec.open_attribute}{under} {check}")


def print_catalog_decisions(decisions: list[dict]) -> None:
    for d in decisions:
        rules = f" [{', '.join(d['rule_ids'])}]" if d["rule_ids"] else ""
        late = " LATE" if d["late"] else ""
        click.echo(f"{d['subject_id']}  {d['resource_code'] or '-'}  {d['status']}{late}{rules}")
        for r in d["reasons"]:
            click.echo(f"    {r}")


def print_share_decisions(decisions: list[dict]) -> None:
    for d in decisions:
        rules = f" [{', '.join(d['rule_ids'])}]" if d["rule_ids"] else ""
        grant = f" grant={d['grant_id']}" if d["grant_id"] else ""
        click.echo(f"{d['request_id']}  {d['resource_code'] or '-'}  {d['status']}{grant}{rules}")
        for r in d["reasons"]:
            click.echo(f"    {r}")
    if not decisions:
        click.echo("no answer yet: is a worker running?", err=True)


def print_case_events(events: list[dict]) -> None:
    """Each step of a case: when, what, who acted, the new status, who must act next and by when."""
    for e in events:
        rules = f" [{', '.join(e['rule_ids'])}]" if e["rule_ids"] else ""
        who = e["actor"] + (f" ({e['person']})" if e["person"] else "")
        click.echo(f"{when(e['occurred_at'])} {e['case_id']}  {e['step']} by {who}  -> {e['status']}{rules}")
        click.echo(f"    {e['message']}")
        if e["due_on"] and e["step"] != "refused":
            click.echo(f"    next: {e['party']} by {e['due_on']} ({e['deadline_id']})")
