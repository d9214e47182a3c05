"""The `govbus` command: run the bus, publish, subscribe, read feeds, administer topics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from datetime import UTC, datetime

import click

from topics.settings import settings


def _run(coro):
    from aiokafka.errors import KafkaConnectionError

    from schemas.errors import SchemaMismatch
    from topics.views import TopicMissing

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        sys.exit(130)
    except TopicMissing as exc:
        raise click.ClickException(str(exc)) from None
    except SchemaMismatch as exc:
        # a value the command's own checks let through; events are encoded before any is sent
        raise click.ClickException(f"not sent: {exc.reason}") from None
    except KafkaConnectionError:
        s = settings()
        raise click.ClickException(
            f"cannot reach Kafka at {s.bootstrap}: start the local stack with `govbus up` "
            "(or `make run`), or point GOVBUS_KAFKA_BOOTSTRAP at a running cluster") from None
    except OSError as exc:
        if "Connect call failed" not in str(exc):
            raise
        raise click.ClickException(f"{exc}: is the stack up? (`govbus up`)") from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the bus does.")
def main(verbose: bool) -> None:
    """govbus: the city's government data exchange bus."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # the client library logs every retry while a broker starts; the bus reports what matters itself
    logging.getLogger("aiokafka").setLevel(logging.INFO if verbose else logging.CRITICAL)


from ops.cli.catalog import catalog  # noqa: E402
from ops.cli.share import alerts, share  # noqa: E402

main.add_command(catalog)
main.add_command(share)
main.add_command(alerts)


# --------------------------------------------------------------------------- stack


@main.command()
def up() -> None:
    """Start the local Kafka and PostgreSQL (unless configured), apply topics and migrations."""
    from ops import stack

    logging.getLogger("govbus").setLevel(logging.INFO)
    s = settings()
    _run(stack.up(s))
    click.echo(f"kafka: {s.bootstrap}\npostgres: {s.dsn}")


@main.command()
def down() -> None:
    """Stop the local Kafka and PostgreSQL."""
    from ops import stack

    _run(stack.down(settings()))


@main.command()
@click.option("--no-demo", is_flag=True, help="Only the bus: no demo publisher and subscriber.")
@click.option("--no-prometheus", is_flag=True, help="Do not start a Prometheus server.")
def run(no_demo: bool, no_prometheus: bool) -> None:
    """Everything: the stack, the supervised workers, the ledger, and a demo publisher and subscriber.

    A process that exits is restarted; `govbus status` shows them. Ctrl-C stops it all."""
    from ops.run import RunError, run_all
    from ops.stack import StackError

    logging.getLogger("govbus").setLevel(logging.INFO)
    try:
        _run(run_all(settings(), demo=not no_demo, prometheus=not no_prometheus))
    except (RunError, StackError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
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

    report = _run(collect(settings(), max_lag=max_lag, timeout=timeout))
    click.echo(json.dumps(report, ensure_ascii=False) if as_json else render(report))
    sys.exit(0 if report["ok"] else 1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a stream worker (faust); extra arguments go to faust."""
    os.execv(sys.executable, [sys.executable, "-m", "streams", "worker", "-l", "info", *ctx.args])


# --------------------------------------------------------------------------- topics, schemas, db


@main.group()
def topics() -> None:
    """Topics as declared in topics/."""


@topics.command("apply")
def topics_apply() -> None:
    """Create missing topics and report drift; safe to re-run."""
    from topics.admin import apply_topics

    report = _run(apply_topics(settings()))
    for name in report.created:
        click.echo(f"created   {name}")
    click.echo(f"unchanged {len(report.unchanged)} topics")
    for line in report.drift:
        click.echo(f"DRIFT     {line}")
    if report.drift:
        sys.exit(2)


@topics.command("list")
def topics_list() -> None:
    """The declared topics."""
    from topics.departments import load
    from topics.registry import all_topics, name_of

    for spec in all_topics(load()):
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000}d"
        click.echo(f"{name_of(spec, settings().topic_prefix):40} {spec.partitions:>3}  {spec.cleanup_policy:8} "
                   f"{retention:>8}  key={spec.key}  value={spec.value_schema}")


@main.group()
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


@main.group()
def db() -> None:
    """The PostgreSQL ledger."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the SQL migrations not yet applied."""
    from ops.db import migrate

    applied = _run(migrate(settings().dsn))
    click.echo("\n".join(applied) if applied else "up to date")


# --------------------------------------------------------------------------- publishing and feeds


@main.command()
@click.option("--as", "publisher", required=True, help="Code of the publishing department, e.g. NJ-GA.")
@click.option("--resource", required=True, help="Catalog code of the resource.")
@click.option("--system", "system_code", default=None, help="Information system that produced the data.")
@click.argument("path")
def publish(publisher: str, resource: str, system_code: str | None, path: str) -> None:
    """Publish records from a JSON, JSON Lines or CSV file ('-': JSON from standard input)."""
    from tqdm import tqdm

    from ops.publish import load, publish_rows, read_rows

    data, fmt, source = load(path)
    rows = list(read_rows(data, fmt))
    s = settings()
    with tqdm(total=len(rows), unit="rec", disable=path == "-" or not sys.stderr.isatty()) as bar:
        report = _run(publish_rows(rows, publisher=publisher, resource_code=resource, source=source,
                                   bootstrap=s.bootstrap, prefix=s.topic_prefix, system_code=system_code,
                                   progress=bar))
    click.echo(f"published {report.published}, rejected {report.rejected}")
    for row in rows:
        if row.problem:
            click.echo(f"  rejected: {row.problem}", err=True)


@main.command()
@click.argument("department")
@click.argument("resource")
@click.option("--cancel", is_flag=True, help="End the subscription.")
def subscribe(department: str, resource: str, cancel: bool) -> None:
    """Subscribe DEPARTMENT to the feed of RESOURCE."""
    from topics.departments import load

    if department not in load():
        raise click.ClickException(f"{department} is not a department registered on the bus")
    _run(_subscribe(department, resource, not cancel))
    click.echo(f"{department} {'cancelled' if cancel else 'subscribed to'} {resource}")


async def _subscribe(department: str, resource: str, active: bool) -> None:
    from ops.kafka_io import send_events
    from topics.registry import SUBSCRIPTIONS

    await send_events(SUBSCRIPTIONS, [(f"{resource}|{department}".encode(), "govbus.exchange.Subscription", {
        "event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "subscriber": department,
        "resource_code": resource, "active": active})])


@main.group()
def feed() -> None:
    """A department's feed."""


@feed.command("tail")
@click.argument("department")
@click.option("--group", default=None, help="Consumer group (default: a new one that reads from the start).")
@click.option("--limit", type=int, default=0, help="Stop after this many records.")
def feed_tail(department: str, group: str | None, limit: int) -> None:
    """Print DEPARTMENT's feed as it arrives."""
    _run(_tail(department, group or f"tail-{department}-{uuid.uuid4().hex[:8]}", limit))


def format_feed_record(rec) -> str:
    items = ", ".join(f"{k}={v}" for k, v in sorted(rec.items.items()))
    check = "ok" if rec.verify() else "DIGEST MISMATCH"
    return (f"{rec.delivered_at:%Y-%m-%d %H:%M:%S} {rec.publisher} -> {rec.subscriber} "
            f"{rec.resource_code} {rec.subject_id} {{{items}}} grant={rec.grant_id} {check}")


async def _tail(department: str, group: str, limit: int) -> None:
    from consumers.feed import Feed

    n = 0
    async with Feed(department, group_id=group) as f:
        async for rec in f:
            click.echo(format_feed_record(rec))
            n += 1
            if limit and n >= limit:
                break


# --------------------------------------------------------------------------- ledger


@main.group()
def ledger() -> None:
    """What flowed through the bus, in PostgreSQL."""


async def _until_signalled(service) -> None:
    """`service(stop)` until SIGINT or SIGTERM sets `stop`: it finishes its batch, commits and leaves its
    consumer group, so whoever replaces it (a restart by `govbus run`) gets the partitions at once."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service(stop)


@ledger.command("run")
def ledger_run() -> None:
    """Run the ledger sink until interrupted."""
    from consumers.ledger import run_ledger
    from topics import metrics

    s = settings()
    logging.getLogger("govbus").setLevel(logging.INFO)
    metrics.serve(int(os.environ.get("GOVBUS_LEDGER_METRICS_PORT", "0")), "ledger")
    _run(_until_signalled(lambda stop: run_ledger(s.bootstrap, s.dsn, s.topic_prefix, stop=stop)))


@ledger.command("stats")
def ledger_stats() -> None:
    """Counts of accepted publications, feed deliveries and rejects."""
    _run(_stats())


async def _stats() -> None:
    from ops.db import connect

    conn = await connect(settings().dsn)
    try:
        for table in ("ledger_deliveries", "ledger_feed_deliveries", "ledger_rejects"):
            click.echo(f"{table:24} {await conn.fetchval(f'SELECT count(*) FROM {table}'):>10}")
        rows = await conn.fetch(
            "SELECT code, count(*) AS n, max(reason) AS example FROM ledger_rejects GROUP BY code ORDER BY n DESC")
        for r in rows:
            click.echo(f"  reject {r['code']:18} {r['n']:>8}  e.g. {r['example']}")
    finally:
        await conn.close()


@ledger.command("quarantine")
@click.option("--all", "show_all", is_flag=True, help="Also the records already replayed.")
@click.option("--limit", default=100, show_default=True)
def ledger_quarantine(show_all: bool, limit: int) -> None:
    """Records the database refused, set aside with their source position and the error."""
    from ops.db import fetch

    rows = _run(fetch(settings().dsn,
                      "SELECT quarantine_id, source_topic, source_partition, source_offset, record_type,"
                      " quarantined_at, replayed_at, reason, replay_error FROM ledger_quarantine"
                      " WHERE $1 OR replayed_at IS NULL ORDER BY quarantine_id LIMIT $2", show_all, limit))
    if not rows:
        click.echo("nothing in quarantine")
        return
    for r in rows:
        state = f"replayed {r['replayed_at']:%Y-%m-%d %H:%M}" if r["replayed_at"] else "waiting"
        click.echo(f"#{r['quarantine_id']}  {r['quarantined_at']:%Y-%m-%d %H:%M:%S}  "
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

    written, refused = _run(replay_quarantine(settings().dsn, ids))
    click.echo(f"replayed {written} record(s) into the ledger")
    for qid, reason in refused:
        click.echo(f"#{qid} still refused: {reason}", err=True)
    if refused:
        sys.exit(1)


# --------------------------------------------------------------------------- checks


@main.group()
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


# --------------------------------------------------------------------------- calendar


@main.group()
def calendar() -> None:
    """The official working-day calendar and deadlines counted in it."""


async def _load_calendar():
    from schemas.codec import default_codec
    from streams.rules.workcalendar import WorkCalendar, publish_event
    from topics.registry import CALENDAR, name_of
    from topics.views import snapshot

    s = settings()
    cal = WorkCalendar()
    try:
        published = await snapshot(s.bootstrap, name_of(CALENDAR, s.topic_prefix), timeout=5)
    except Exception as exc:  # the built-in years still answer; say that later ones are missing
        click.echo(f"warning: published calendars unavailable ({exc or type(exc).__name__}); "
                   "only the built-in years are known", err=True)
        return cal
    codec = default_codec()
    for value in published.values():
        publish_event(cal, codec, value)
    return cal


def _date(value: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None


@calendar.command("due")
@click.argument("received")
@click.argument("days", type=click.IntRange(min=1))
def calendar_due(received: str, days: int) -> None:
    """The deadline DAYS working days after RECEIVED (the day of receipt does not count)."""
    day = _date(received)
    cal = _run(_load_calendar())
    try:
        click.echo(str(cal.add_working_days(day, days)))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@calendar.command("is-workday")
@click.argument("day")
def calendar_is_workday(day: str) -> None:
    """`workday` or `rest day` (followed by `provisional` for a year not yet published)."""
    d = _date(day)
    cal = _run(_load_calendar())
    work = cal.is_workday(d)
    if work is None:
        click.echo(("workday" if d.weekday() < 5 else "rest day") + " provisional")
    else:
        click.echo("workday" if work else "rest day")


@calendar.command("publish")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "publisher", default="NJ-SJJ", show_default=True, help="Publishing authority.")
def calendar_publish(path: str, publisher: str) -> None:
    """Publish a year's calendar from a YAML or JSON file (year, source, holidays, workdays)."""
    from ops.cli.catalog import _mapping, _read, _required
    from streams.rules.workcalendar import WorkCalendar, year_from_record

    fields = ("year", "source", "holidays", "workdays")
    raw = _mapping(_read(path), "a calendar file", fields)
    if "year" not in raw or "source" not in raw:
        raise click.ClickException(f"a calendar file gives {', '.join(fields)}")
    source = _required(raw["source"], "source (the notice the calendar comes from)")
    try:
        year = year_from_record(raw)
        WorkCalendar().publish(year)
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    _run(_publish_calendar(year, source, publisher))
    click.echo(f"published the {year.year} calendar: {len(year.holidays)} days off, "
               f"{len(year.workdays)} adjusted working days")


async def _publish_calendar(year, source: str, publisher: str) -> None:
    from ops.kafka_io import send_events
    from topics.registry import CALENDAR

    await send_events(CALENDAR, [(str(year.year).encode(), "govbus.calendar.CalendarYear", {
        "event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "year": year.year,
        "holidays": sorted(d.isoformat() for d in year.holidays),
        "workdays": sorted(d.isoformat() for d in year.workdays), "source": source, "published_by": publisher,
    })])


# --------------------------------------------------------------------------- deadlines


@main.group()
def deadlines() -> None:
    """Statutory deadlines in working days: the service, extensions, notices."""


@deadlines.command("run")
def deadlines_run() -> None:
    """Run the deadline service until interrupted."""
    from streams.deadline_service import run_service
    from topics import metrics

    logging.getLogger("govbus").setLevel(logging.INFO)
    metrics.serve(int(os.environ.get("GOVBUS_DEADLINES_METRICS_PORT", "0")), "deadlines")
    s = settings()
    _run(_until_signalled(lambda stop: run_service(s, stop)))


@deadlines.command("extend")
@click.argument("deadline_id")
@click.option("--days", type=click.IntRange(min=1), required=True)
@click.option("--approved-by", required=True, help="Name of the department's principal head (R-7.1).")
@click.option("--as", "actor", required=True, help="Department asking for the extension.")
def deadlines_extend(deadline_id: str, days: int, approved_by: str, actor: str) -> None:
    """Extend a deadline where the measures allow it (once, within the limit, with the head's approval)."""
    from ops.kafka_io import send_events
    from streams.rules.deadlines import command_record
    from topics.registry import DEADLINE_COMMANDS

    rec = command_record(datetime.now(UTC), "extend", deadline_id, actor, extension_days=days, approved_by=approved_by)
    rec["event_id"] = uuid.uuid4().hex  # each request is its own: a second one is refused, not dropped
    _run(send_events(DEADLINE_COMMANDS, [(deadline_id.encode(), "govbus.deadlines.DeadlineCommand", rec)]))
    click.echo(f"extension of {deadline_id} by {days} working days requested; see `govbus deadlines notices`")


@deadlines.command("list")
@click.option("--party", default=None, help="Only deadlines this department must meet.")
@click.option("--all", "show_all", is_flag=True, help="Include closed deadlines.")
def deadlines_list(party: str | None, show_all: bool) -> None:
    """Deadlines and their state, soonest first."""
    from schemas.codec import default_codec
    from topics.registry import DEADLINES, name_of
    from topics.views import snapshot

    s = settings()
    states = [default_codec().decode(v, "govbus.deadlines.DeadlineState").record
              for v in _run(snapshot(s.bootstrap, name_of(DEADLINES, s.topic_prefix))).values()]
    states = [d for d in states if (show_all or not d["closed"]) and (party is None or d["party"] == party)]
    for d in sorted(states, key=lambda d: d["due_on"]):
        flags = [f for f in ("reminded", "breached", "closed", "provisional") if d[f]]
        click.echo(f"{d['due_on']}  {d['party']:8} {d['case_type']:22} {d['deadline_id']}  {' '.join(flags)}")
    click.echo(f"{len(states)} deadlines")


@deadlines.command("notices")
@click.option("--party", default=None)
@click.option("--limit", default=50, show_default=True)
def deadlines_notices(party: str | None, limit: int) -> None:
    """Recent reminders, breaches and other deadline notices (from the ledger)."""
    from ops.db import fetch

    for r in _run(fetch(settings().dsn, "SELECT * FROM deadline_notices WHERE ($1::text IS NULL OR party = $1)"
                        " ORDER BY occurred_at DESC LIMIT $2", party, limit)):
        click.echo(f"{r['occurred_at']:%Y-%m-%d %H:%M} {r['kind']:11} {r['party']:8} [{r['rule_id']}] {r['message']}")


# --------------------------------------------------------------------------- benchmarks


@main.group()
def bench() -> None:
    """Benchmarks anyone can re-run; they print tables and assert nothing."""


@bench.command("deadlines")
@click.argument("sizes", nargs=-1, type=int)
def bench_deadlines(sizes: tuple[int, ...]) -> None:
    """Memory and time per tick of the deadline engine at 10k / 100k / 1M open deadlines."""
    from ops.bench.deadlines import main as run_bench

    run_bench(sizes or (10_000, 100_000, 1_000_000))


@bench.command("pipeline")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
def bench_pipeline(n: int) -> None:
    """Deliveries per second through the pipeline to 10 feeds, next to a raw aiokafka loop."""
    from ops import stack
    from ops.bench.pipeline import run

    s = settings()
    _run(stack.up(s))
    _run(run(s, n))


@bench.command("scaling")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
def bench_scaling(n: int) -> None:
    """Deliveries per second with one worker, then with two sharing the partitions."""
    from ops import stack
    from ops.bench.pipeline import run_scaling

    s = settings()
    _run(stack.up(s))
    _run(run_scaling(s, n))


@bench.command("latency")
@click.option("--rate", default=1000, show_default=True, help="Publications per second, evenly paced.")
@click.option("--seconds", default=30.0, show_default=True, help="Measured seconds, after a 5 s warm-up.")
@click.option("--workers", default=1, show_default=True, help="Worker processes sharing the partitions.")
def bench_latency(rate: int, seconds: float, workers: int) -> None:
    """Publication to arrival on a feed at a steady rate: p50, p99, max."""
    from ops import stack
    from ops.bench.latency import run

    s = settings()
    _run(stack.up(s))
    _run(run(s, rate, seconds, workers))


@bench.command("codec")
@click.option("--records", "n", default=20_000, show_default=True)
def bench_codec(n: int) -> None:
    """The Avro codec against bare fastavro schemaless read/write on the same records."""
    from ops.bench.codec import run

    run(n)
