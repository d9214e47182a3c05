"""`govbus run`: the whole bus on one machine, its processes supervised (restarted when they exit), and a
demo so a newcomer sees events flow; Ctrl-C stops the demo, the processes in reverse order, then Kafka and
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from pathlib import Path

from ops.supervisor import ChildSpec, Supervisor
from topics import settings as config
from topics.settings import METRICS_PORTS, REPO_ROOT, Settings

log = logging.getLogger("govbus.run")

DEMO_PROVIDER = "NJ-GA"
DEMO_SUBSCRIBER = "NJ-MZ"
DEMO_RESOURCE = "GA-RK-001"
DEMO_FILE = REPO_ROOT / "ops" / "seed" / "demo" / "residents.csv"

class RunError(RuntimeError):
    """`govbus run` cannot start; the message says why and what to do."""


def metrics_port(process: str) -> int:
    try:
        return config.metrics_port(process)
    except ValueError as exc:
        raise RunError(str(exc)) from None


def child_specs(settings: Settings, *, prometheus: bool = True) -> list[ChildSpec]:
    """The supervised processes, in start order (they are stopped in the reverse one).

    The Prometheus server (ops/prometheus_server.py) belongs at the end of this list when `prometheus`
    is true: it scrapes the metrics addresses of the processes before it and of the supervisor."""
    govbus = str(Path(sys.executable).parent / "govbus")

    def spec(name: str, argv: list[str]) -> ChildSpec:
        var, _ = METRICS_PORTS[name]
        port = metrics_port(name)
        return ChildSpec(name, argv, {var: str(port)}, port)

    specs = [
        spec("worker", [sys.executable, "-m", "streams", "worker", "-l", "info"]),
        spec("ledger", [govbus, "ledger", "run"]),
        spec("deadlines", [govbus, "deadlines", "run"]),
    ]
    if prometheus:
        from ops.prometheus_server import PROMETHEUS, LocalPrometheus

        if not PROMETHEUS.exists():
            raise RunError(f"{PROMETHEUS} is missing: run `make install`, or start with --no-prometheus")
        server = LocalPrometheus(settings)
        server.write_config()
        specs.append(ChildSpec("prometheus", server.argv(), {}, server.port))
    return specs


async def run_all(settings: Settings, *, demo: bool = True, prometheus: bool = True) -> None:
    """The stack, the supervised processes and (unless `demo` is false) the demo, until SIGINT or SIGTERM."""
    from ops import stack
    from topics import metrics

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    specs = child_specs(settings, prometheus=prometheus)
    port = metrics_port("supervisor")
    try:
        metrics.serve(port, "supervisor")
    except OSError as exc:
        raise RunError(f"the supervisor cannot serve its metrics on 127.0.0.1:{port} ({exc.strerror}): is another "
                       "`govbus run` up? Stop it, or set GOVBUS_SUPERVISOR_METRICS_PORT") from None
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(specs, settings.state_dir, metrics_address=f"127.0.0.1:{port}" if port else None)
    supervisor.reap_stale()
    await stack.up(settings)
    await supervisor.start()
    print(f"\ngovbus is running: kafka {settings.bootstrap}, postgres {settings.dsn}")
    served = [(s.name, s.metrics) for s in specs if s.metrics]
    if port:
        served.append(("supervisor", f"127.0.0.1:{port}"))
    for i, (name, addr) in enumerate(served):
        print(f"{'metrics:' if i == 0 else '':9} {name:11} http://{addr}/metrics")
    if prometheus:
        print(f"alerts:   http://127.0.0.1:{specs[-1].metrics_port}/alerts")
    print(f"logs:     {settings.state_dir}\nhealth:   govbus status")
    print("Ctrl-C stops everything.\n", flush=True)
    demo_task = asyncio.create_task(_demo(settings, stop)) if demo else None
    if demo_task is not None:
        demo_task.add_done_callback(_demo_ended)
    try:
        await stop.wait()
    finally:
        print("\nstopping ...", flush=True)
        if demo_task is not None:
            demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await demo_task
        await supervisor.stop()
        await stack.down(settings)
        print("stopped.", flush=True)


def _demo_ended(task: asyncio.Task) -> None:
    # the bus goes on without the demo; without this line its failure would only show at Ctrl-C
    if not task.cancelled() and task.exception() is not None:
        log.warning("the demo stopped: %s", task.exception())


CATALOG_SEED = REPO_ROOT / "ops" / "seed" / "catalog"


async def _demo_catalog(settings: Settings) -> None:
    """Systems and entries registered, submitted and reviewed, as departments and authorities do."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    import yaml

    from ops.cli.catalog import _print_decisions, _submit_and_wait, entry_from_file, review_and_wait
    from streams.rules.workcalendar import WorkCalendar
    from topics.registry import CATALOG, name_of
    from topics.views import snapshot

    approved = await snapshot(settings.bootstrap, name_of(CATALOG, settings.topic_prefix))
    steps = [("NJ-GA", "ga-system.yaml", "ga-population.yaml", "NJ-SJJ", "张立新"),
             ("WY-MZ", "wy-system.yaml", "wy-subsidy.yaml", "WY-SJJ", "姚远")]
    for dept, system_file, entry_file, authority, person in steps:
        raw = yaml.safe_load((CATALOG_SEED / entry_file).read_text(encoding="utf-8"))
        if raw["resource_code"].encode() in approved:
            print(f"[catalog] {raw['resource_code']} is already in the catalog")
            continue
        now = datetime.now(UTC)
        system = yaml.safe_load((CATALOG_SEED / system_file).read_text(encoding="utf-8"))
        sys_rec = {"event_id": uuid.uuid4().hex, "occurred_at": now, "department": dept, **system,
                   "resource_codes": []}
        print(f"[catalog] {dept} registers information system {system['system_code']}")
        _print_decisions(await _submit_and_wait([(dept.encode(), "govbus.catalog.SystemRegistration", sys_rec)], 20))
        sub = {"event_id": uuid.uuid4().hex, "occurred_at": now, "submitter": dept, "kind": "new",
               "change_date": None, "change_reason": None, "entry": entry_from_file(raw, dept)}
        print(f"[catalog] {dept} submits {raw['resource_code']} {raw['name']}")
        _print_decisions(await _submit_and_wait([(dept.encode(), "govbus.catalog.CatalogSubmission", sub)], 20))
        review = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "reviewer": authority,
                  "reviewer_person": person, "submission_id": sub["event_id"], "decision": "approve",
                  "reason": None}
        print(f"[catalog] {authority} ({person}) approves it")
        _print_decisions(await review_and_wait(review, 20))

    # a law changed 13 working days ago: the civil affairs bureau's update is due in two working days,
    # so the deadline service reminds it at once
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    changed_on = WorkCalendar().working_days_before(today, 13)
    change = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": DEMO_SUBSCRIBER,
              "change_date": changed_on.isoformat(), "change_kind": "law",
              "description": "《社会救助暂行办法》修订", "reported_by": "NJ-SJJ"}
    print(f"[catalog] NJ-SJJ records a change of law of {changed_on}: {DEMO_SUBSCRIBER} must update its catalog")
    _print_decisions(await _submit_and_wait([(b"NJ-SJJ", "govbus.catalog.CatalogChange", change)], 20))


SHARE_REQUESTER = "NJ-YB"
SHARE_RESOURCE = "WY-MZ-DB-001"
SHARE_FILE = REPO_ROOT / "ops" / "seed" / "demo" / "subsidy.csv"


async def _demo_sharing() -> None:
    """A conditional resource: the medical insurance bureau asks, the county civil affairs bureau approves."""
    from datetime import UTC, date, datetime, timedelta

    from ops.cli.share import _print, send_share

    now = datetime.now(UTC)
    req = {"event_id": uuid.uuid4().hex, "occurred_at": now, "requester": SHARE_REQUESTER,
           "resource_code": SHARE_RESOURCE, "purpose": "医疗救助与低保对象衔接", "items": ["姓名", "保障类别"],
           "subjects": [], "valid_from": date.today().isoformat(),
           "valid_until": (date.today() + timedelta(days=365)).isoformat()}
    print(f"[share] {SHARE_REQUESTER} asks WY-MZ for {SHARE_RESOURCE} items 姓名, 保障类别 (not 月救助金额)")
    _print(await send_share("govbus.sharing.ShareRequest", req, req["event_id"], 20))
    answer = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "request_id": req["event_id"],
              "provider": "WY-MZ", "person": "熊燕", "decision": "approve", "reason": None, "basis": None,
              "items": []}
    print("[share] WY-MZ (熊燕) approves: a directed authorization to NJ-YB only, for that scope and purpose")
    _print(await send_share("govbus.sharing.ShareAnswer", answer, req["event_id"], 20))


async def _demo(settings: Settings, stop: asyncio.Event) -> None:
    from consumers.feed import Feed
    from ops.cli import _subscribe, format_feed_record
    from ops.kafka_io import Answers
    from ops.publish import publish_rows, read_rows
    from topics.registry import NOTICES

    async def notices() -> None:
        async with Answers(NOTICES, "govbus.deadlines.Notice") as answers:
            while True:
                for n in await answers.wait(bool, 3600):
                    if n["kind"] in ("reminder", "breach", "started"):
                        print(f"[deadline {n['kind']}] {n['message']}")

    notice_task = asyncio.create_task(notices())
    await asyncio.sleep(0.5)
    await _demo_catalog(settings)
    await _demo_sharing()
    await _subscribe(DEMO_SUBSCRIBER, DEMO_RESOURCE, True)
    print(f"[demo] {DEMO_SUBSCRIBER} subscribed to {DEMO_RESOURCE} ({DEMO_PROVIDER}'s resident records)")

    async def tail(department: str) -> None:
        async with Feed(department, group_id=f"{settings.topic_prefix}demo-{department}") as feed:
            async for rec in feed:
                print(f"[feed {department}] {format_feed_record(rec)}")

    async def publish() -> None:
        rows = list(read_rows(DEMO_FILE.read_bytes(), "csv"))
        # one broken row, to show that refusals are recorded with their reason
        rows += list(read_rows(b"subject_id,\xe5\xa7\x93\xe5\x90\x8d\n511002198001011230,x,y\n", "csv"))
        subsidy = list(read_rows(SHARE_FILE.read_bytes(), "csv"))
        while not stop.is_set():
            report = await publish_rows(rows, publisher=DEMO_PROVIDER, resource_code=DEMO_RESOURCE,
                                        source=DEMO_FILE.name, bootstrap=settings.bootstrap,
                                        prefix=settings.topic_prefix)
            print(f"[publish {DEMO_PROVIDER}] published {report.published} records to {DEMO_RESOURCE}, "
                  f"{report.rejected} rejected")
            report = await publish_rows(subsidy, publisher="WY-MZ", resource_code=SHARE_RESOURCE,
                                        source=SHARE_FILE.name, bootstrap=settings.bootstrap,
                                        prefix=settings.topic_prefix, system_code="WY-MZ-JZ")
            print(f"[publish WY-MZ] published {report.published} records to {SHARE_RESOURCE}")
            await asyncio.sleep(10)
            await ledger_counts()

    async def ledger_counts() -> None:
        from ops.db import fetch

        (row,) = await fetch(settings.dsn,
                             "SELECT (SELECT count(*) FROM ledger_deliveries) AS accepted,"
                             " (SELECT count(*) FROM ledger_feed_deliveries) AS fed,"
                             " (SELECT count(*) FROM ledger_rejects) AS rejects")
        print(f"[ledger] accepted {row['accepted']}, delivered to feeds {row['fed']}, rejects {row['rejects']}")

    try:
        await asyncio.gather(tail(DEMO_SUBSCRIBER), tail(SHARE_REQUESTER), publish())
    finally:
        notice_task.cancel()
