"""`govbus publish`, `subscribe`, `feed` and `check`: a department's data onto the bus and off its feed."""

from __future__ import annotations

import sys

import click

from ops.cli import common
from topics.settings import settings


@click.command()
@click.option("--as", "publisher", required=True, type=common.DEPARTMENT,
              help="Code of the publishing department, e.g. NJ-GA; the Kafka credentials must be its own.")
@click.option("--resource", required=True, help="Catalog code of the resource.")
@click.option("--system", "system_code", default=None, help="Information system that produced the data.")
@click.argument("path")
def publish(publisher: str, resource: str, system_code: str | None, path: str) -> None:
    """Publish records from a JSON, JSON Lines or CSV file ('-': JSON from standard input) on the department's
    own inbound topic. Each record is judged first by the bus's own checks of a publication (identifiers, data
    items, storable values): one they refuse is not sent but listed, and the exit code is then 1."""
    from tqdm import tqdm

    from ops.publish import load, publish_rows, read_rows
    from streams.rules.exchange import check_against_catalog, check_delivery, check_source
    from streams.rules.identifiers import subject_problem
    from topics.departments import load as departments

    data, fmt, source = load(path)
    entry = common.refuse_before_sending("nothing published", resource,
                                         lambda entry: check_source(resource, publisher, entry))
    subject_item = next((i["name"] for i in entry["entry"]["data_items"] if i.get("subject_id")), None)
    rows = list(read_rows(data, fmt, subject_item))
    known = departments()
    s = settings()
    with tqdm(total=len(rows), unit="rec", disable=path == "-" or not sys.stderr.isatty()) as bar:
        report = common.run(publish_rows(
            rows, publisher=publisher, resource_code=resource, source=source, bootstrap=s.bootstrap,
            prefix=s.topic_prefix, system_code=system_code, progress=bar,
            judge=lambda rec: check_delivery(rec, known) or check_against_catalog(rec, entry, subject_problem)))
    click.echo(f"published {report.published}, rejected {report.rejected}")
    for row in rows:
        if row.problem:
            click.echo(f"  rejected: {row.problem}", err=True)
    if not report.rejects_recorded:
        click.echo("  (these credentials may not write the rejects topic: the rejected rows are listed here only)",
                   err=True)
    if report.rejected:
        sys.exit(1)


@click.command()
@click.argument("department", type=common.DEPARTMENT)
@click.argument("resource")
@click.option("--cancel", is_flag=True, help="End the subscription.")
def subscribe(department: str, resource: str, cancel: bool) -> None:
    """Subscribe DEPARTMENT to RESOURCE, shared unconditionally (R-27.1): its feed carries every publication of it
    from when the worker takes the subscription. A department subscribes itself, with its own credentials."""
    from ops.kafka_io import subscribe as send_subscription
    from streams.rules.sharing import check_subscription

    if not cancel:
        common.refuse_before_sending("not subscribed", resource,
                                     lambda entry: check_subscription(resource, entry, department))
    else:  # only a resource of the catalog has subscriptions to end (a grant is its provider's to revoke)
        common.refuse_before_sending("nothing cancelled", resource, lambda entry: check_subscription(
            resource, entry, department) if entry is None else None)
    common.run(send_subscription(department, resource, not cancel))
    click.echo(f"{department} {'cancelled' if cancel else 'subscribed to'} {resource}")


@click.group()
def feed() -> None:
    """A department's feed."""


@feed.command("tail")
@click.argument("department", type=common.DEPARTMENT)
@click.option("--group", default=None,
              help="Consumer group, under the department's own prefix, to go on from where it last committed and "
                   "commit what is shown (default: none; the whole feed from its start, nothing committed).")
@click.option("--limit", type=int, default=0, help="Stop after this many records.")
def feed_tail(department: str, group: str | None, limit: int) -> None:
    """Print DEPARTMENT's feed as it arrives."""
    from consumers.feed import Feed
    from ops.display import format_feed_record

    common.tail_feed(Feed(department, group_id=group, commits=group is not None), format_feed_record, limit)


@click.group()
def check() -> None:
    """Check identifiers."""


@check.command("id")
@click.argument("value")
def check_id(value: str) -> None:
    """Is VALUE a valid 18-digit resident identity number (GB 11643)?"""
    from streams.rules.identifiers import resident_id_problem

    problem = resident_id_problem(value)
    click.echo(problem or "valid")
    sys.exit(1 if problem else 0)


@check.command("uscc")
@click.argument("value")
def check_uscc(value: str) -> None:
    """Is VALUE a valid 18-character unified social credit code (GB 32100)?"""
    from streams.rules.identifiers import uscc_problem

    problem = uscc_problem(value)
    click.echo(problem or "valid")
    sys.exit(1 if problem else 0)
