"""The `govbus` command: run the bus, publish, subscribe, read feeds, administer topics; one module per
command group, over ops/cli/common.py."""

from __future__ import annotations

import logging

import click

from ops.cli import (
    audit,
    backup,
    bench,
    calendar,
    case,
    catalog,
    common,
    dept,
    evaluate,
    exchange,
    ledger,
    open_data,
    share,
    stack,
)


@click.group(cls=common.Group)
@click.option("-v", "--verbose", is_flag=True, help="Log what the bus does.")
def main(verbose: bool) -> None:
    """govbus: the city's government data exchange bus."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # the client library logs every retry while a broker starts; the bus reports what matters itself
    logging.getLogger("aiokafka").setLevel(logging.INFO if verbose else logging.CRITICAL)


for command in (
    stack.up, stack.down, stack.run, stack.status, stack.worker, stack.topics, stack.schemas, stack.db,
    exchange.publish, exchange.subscribe, exchange.feed, exchange.check,
    ledger.ledger, audit.audit, calendar.calendar, calendar.deadlines, catalog.catalog, share.share, share.alerts,
    bench.bench, dept.dept, dept.acls, backup.backup, backup.restore, evaluate.evaluate, case.party, case.case,
    open_data.open_,
):
    main.add_command(command)
