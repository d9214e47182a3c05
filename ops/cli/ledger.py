"""`govbus ledger ...`: run the ledger sink, count what it holds, list and replay what it set aside."""

from __future__ import annotations

import logging
import sys

import click

from ops.cli import common
from ops.display import when
from topics.settings import settings


@click.group()
def ledger() -> None:
    """What flowed through the bus, in PostgreSQL."""


@ledger.command("run")
def ledger_run() -> None:
    """Run the ledger sink until interrupted."""
    from consumers.ledger import run_ledger

    s = settings()
    logging.getLogger("govbus").setLevel(logging.INFO)
    common.serve_metrics("ledger", "the ledger")
    common.run(common.until_signalled(lambda stop: run_ledger(s.bootstrap, s.dsn, s.topic_prefix, stop=stop)))


@ledger.command("stats")
def ledger_stats() -> None:
    """Counts of accepted publications, feed deliveries and rejects."""
    from consumers import queries

    dsn = settings().dsn
    for table, n in common.run(queries.ledger_counts(dsn)).items():
        click.echo(f"{table:24} {n:>10}")
    for r in common.run(queries.rejects_by_code(dsn)):
        click.echo(f"  reject {r['code']:18} {r['n']:>8}  e.g. {r['example']}")


@ledger.command("quarantine")
@click.option("--all", "show_all", is_flag=True, help="Also the records already replayed.")
@click.option("--limit", default=100, show_default=True)
def ledger_quarantine(show_all: bool, limit: int) -> None:
    """Records the database refused, set aside with their source position and the error."""
    from consumers.queries import quarantined

    rows = common.run(quarantined(settings().dsn, show_all, limit))
    if not rows:
        click.echo("nothing in quarantine")
        return
    for r in rows:
        state = f"replayed {when(r['replayed_at'])}" if r["replayed_at"] else "waiting"
        click.echo(f"#{r['quarantine_id']}  {when(r['quarantined_at'], seconds=True)}  "
                   f"{r['source_topic']}:{r['source_partition']}:{r['source_offset']}  "
                   f"{r['record_type'] or '(unreadable)'}  {state}")
        click.echo(f"    {r['reason']}")
        if r["replay_error"] and not r["replayed_at"]:
            click.echo(f"    last replay: {r['replay_error']}")


@ledger.command("replay")
@click.argument("ids", nargs=-1, type=int)
def ledger_replay(ids: tuple[int, ...]) -> None:
    """Write the quarantined records (or only IDS) again, once the cause is fixed."""
    from consumers.ledger import replay_quarantine

    written, refused, absent = common.run(replay_quarantine(settings().dsn, ids))
    click.echo(f"replayed {written} record(s) into the ledger")
    for qid, reason in refused:
        click.echo(f"#{qid} still refused: {reason}", err=True)
    for qid in absent:
        click.echo(f"#{qid} is not waiting in quarantine (no such record, or replayed already): "
                   "`govbus ledger quarantine --all` lists them", err=True)
    if refused or absent:
        sys.exit(1)
