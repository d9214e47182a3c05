"""`govbus up`, `down`, `run`, `status`, `worker`, `topics`, `schemas` and `db`: the bus's own machinery."""

from __future__ import annotations

import logging
import os
import sys

import click

from ops.cli import common
from topics.settings import settings

BROKERS = click.option(
    "--brokers", type=click.IntRange(1, 9), default=None,
    help="Brokers of the local Kafka (GOVBUS_KAFKA_BROKERS; default: as its data was formatted, else 1). Node i "
         "takes client port GOVBUS_KAFKA_PORT + 2(i-1), its controller the next.")


def with_brokers(brokers: int | None) -> None:
    if brokers is not None:  # the bus's processes read it from the environment too
        os.environ["GOVBUS_KAFKA_BROKERS"] = str(brokers)


@click.command()
@BROKERS
def up(brokers: int | None) -> None:
    """Start the local Kafka and PostgreSQL (unless configured), apply topics and migrations."""
    from ops import stack

    logging.getLogger("govbus").setLevel(logging.INFO)
    with_brokers(brokers)
    try:
        s = common.run(stack.up(settings()))
    except stack.StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"kafka: {s.bootstrap}\npostgres: {s.dsn_shown}")
    if s.local_kafka:
        click.echo(f"admin: {s.state_dir / 'admin.properties'}")


@click.command()
def down() -> None:
    """Stop the local Kafka and PostgreSQL."""
    from ops import stack

    s = settings()
    stopped = common.run(stack.down(s))
    parts = [what for what, local in (("Kafka", s.local_kafka), ("PostgreSQL", s.local_postgres)) if local]
    if not parts:
        click.echo("nothing local to stop: Kafka and PostgreSQL are the ones GOVBUS_KAFKA_BOOTSTRAP and "
                   "GOVBUS_DATABASE_URL name")
    elif stopped:
        click.echo(f"stopped: the local {' and '.join(stopped)} of {s.state_dir}")
    else:
        click.echo(f"nothing was running: the local {' and '.join(parts)} of {s.state_dir} were already stopped")


@click.command()
@click.option("--no-demo", is_flag=True, help="Only the bus: no demo publisher and subscriber.")
@click.option("--no-prometheus", is_flag=True, help="Do not start a Prometheus server.")
@BROKERS
def run(no_demo: bool, no_prometheus: bool, brokers: int | None) -> None:
    """Everything: the stack, the supervised workers, the ledger, and a demo publisher and subscriber.

    A process that exits is restarted; `govbus status` shows them. Ctrl-C stops it all."""
    from ops.run import RunError, run_all
    from ops.stack import StackError

    logging.getLogger("govbus").setLevel(logging.INFO)
    with_brokers(brokers)
    try:
        common.run(run_all(settings(), demo=not no_demo, prometheus=not no_prometheus))
    except (RunError, StackError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
@click.option("--max-lag", default=1000, show_default=True,
              help="Records a group of the bus's own processes may be behind before the check fails.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the broker and the database.")
def status(as_json: bool, max_lag: int, timeout: float) -> None:
    """Broker, database, supervised processes, consumer lag, ledger, quarantine, deadlines, rejects.

    Exits 1 when something is down or behind: broker or database unreachable, a process of `govbus run`
    not running, a group of the bus over --max-lag, records waiting in quarantine."""
    import json

    from ops.status import collect, render

    report = common.run(collect(settings(), max_lag=max_lag, timeout=timeout))
    click.echo(json.dumps(report, ensure_ascii=False) if as_json else render(report))
    sys.exit(0 if report["ok"] else 1)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a stream worker (faust); extra arguments go to faust."""
    os.execv(sys.executable, [sys.executable, "-m", "streams", "worker", "-l", "info", *ctx.args])


@click.group()
def topics() -> None:
    """Topics as declared in topics/."""


@topics.command("apply")
def topics_apply() -> None:
    """Create missing topics, report drift, and bring the broker's ACLs in step with the registry; safe to re-run."""
    from topics.access import apply_acls
    from topics.admin import apply_topics
    from topics.registry import replication

    s = settings()
    report = common.run(apply_topics(s))
    for name in report.created:
        click.echo(f"created   {name}")
    click.echo(f"unchanged {len(report.unchanged)} topics")
    for line in report.drift:
        click.echo(f"DRIFT     {line}")
    rep = replication(report.brokers)
    click.echo(f"replication: factor {rep.factor}, min.insync.replicas {rep.min_insync} on {report.brokers} "
               f"broker{'s' if report.brokers != 1 else ''}")
    access = common.run(apply_acls(s))
    removed = f"; credentials removed: {', '.join(access.principals_removed)}" if access.principals_removed else ""
    click.echo(f"ACLs: {len(access.created)} added, {len(access.deleted)} removed, {access.unchanged} unchanged"
               f"{removed}")
    if report.drift:
        sys.exit(2)


@topics.command("list")
def topics_list() -> None:
    """The declared topics (replication as declared for a cluster of three or more brokers)."""
    from topics.departments import load
    from topics.registry import all_topics, name_of

    for spec in all_topics(load()):
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000}d"
        click.echo(f"{name_of(spec, settings().topic_prefix):40} {spec.partitions:>3}  {spec.cleanup_policy:8} "
                   f"{retention:>8}  replicas={spec.replication_factor}/min.insync={spec.min_insync_replicas}  "
                   f"key={spec.key}  value={spec.value_schema}")


@click.group()
def schemas() -> None:
    """Avro schemas kept in schemas/."""


@schemas.command("list")
def schemas_list() -> None:
    """The fingerprint table: every schema version and its CRC-64-AVRO fingerprint."""
    from schemas.codec import default_codec

    for v in default_codec().versions:
        click.echo(f"{v.fingerprint_hex}  {v.name} v{v.version}")


@schemas.command("check")
def schemas_check() -> None:
    """Check that each schema version can read what the previous one wrote."""
    from schemas.codec import default_codec
    from schemas.compat import evolution_report

    bad = False
    for pair, problems in evolution_report(default_codec()).items():
        click.echo(f"{'ok ' if not problems else 'BAD'} {pair}")
        for p in problems:
            click.echo(f"    {p}")
        bad |= bool(problems)
    sys.exit(1 if bad else 0)


@click.group()
def db() -> None:
    """The PostgreSQL ledger."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the SQL migrations not yet applied."""
    from ops.db import migrate

    applied = common.run(migrate(settings().dsn))
    click.echo("\n".join(applied) if applied else "up to date")
