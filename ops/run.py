"""`govbus run`: the whole bus on one machine, with a demo so a newcomer sees events flow.

Starts the local stack, a stream worker and the ledger sink as child processes, then a
demo: the public security bureau publishes resident records, the civil affairs bureau
receives them on its feed, and the ledger counts what flowed. Ctrl-C stops everything in
order: demo, worker, ledger, then Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from ops.config import REPO_ROOT, Settings

log = logging.getLogger("govbus.run")

DEMO_PROVIDER = "NJ-GA"
DEMO_SUBSCRIBER = "NJ-MZ"
DEMO_RESOURCE = "GA-RK-001"
DEMO_FILE = REPO_ROOT / "ops" / "seed" / "demo" / "residents.csv"


class Children:
    """Child processes with pid files, so a run killed half-way is cleaned up by the next."""

    def __init__(self, settings: Settings):
        self.dir = settings.state_dir / "pids"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = settings.state_dir

    def reap_stale(self) -> None:
        from ops.stack import _cmdline, _pid_alive

        for pidfile in self.dir.glob("*.pid"):
            try:
                pid = int(pidfile.read_text())
            except ValueError:
                pid = 0
            cmd = _cmdline(pid) if pid and _pid_alive(pid) else ""
            if "streams" in cmd or "govbus" in cmd:
                log.info("stopping %s (pid %s) left over from an earlier run", pidfile.stem, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  (the child owns it)
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True, cwd=REPO_ROOT)
        self.procs[name] = proc
        (self.dir / f"{name}.pid").write_text(str(proc.pid))
        log.info("started %s (pid %s), log in %s", name, proc.pid, self.logs / f"{name}.log")

    async def stop_all(self, timeout: float = 20.0) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                for _ in range(int(timeout * 10)):
                    if proc.poll() is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    proc.kill()
                    proc.wait()
            (self.dir / f"{name}.pid").unlink(missing_ok=True)
            log.info("stopped %s", name)


async def run_all(settings: Settings) -> None:
    from ops import stack

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    children = Children(settings)
    children.reap_stale()
    await stack.up(settings)
    bindir = Path(sys.executable).parent
    children.start("worker", [sys.executable, "-m", "streams", "worker", "-l", "info"],
                   {"GOVBUS_METRICS_PORT": os.environ.get("GOVBUS_METRICS_PORT", "9464")})
    children.start("ledger", [str(bindir / "govbus"), "ledger", "run"])
    children.start("deadlines", [str(bindir / "govbus"), "deadlines", "run"])
    print(f"\ngovbus is running: kafka {settings.bootstrap}, postgres {settings.dsn}")
    print("metrics: http://127.0.0.1:9464/metrics   logs: " + str(settings.state_dir))
    print("Ctrl-C stops everything.\n")
    demo = asyncio.create_task(_demo(settings, stop))
    try:
        await stop.wait()
    finally:
        print("\nstopping ...")
        demo.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await demo
        await children.stop_all()
        await stack.down(settings)
        print("stopped.")


CATALOG_SEED = REPO_ROOT / "ops" / "seed" / "catalog"


async def _demo_catalog(settings: Settings) -> None:
    """Systems and entries registered, submitted and reviewed, as departments and authorities do."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    import yaml

    from ops.catalog_cli import _print_decisions, _submit_and_wait, entry_from_file, review_and_wait
    from streams.views import snapshot
    from streams.workcalendar import WorkCalendar
    from topics.registry import CATALOG, name_of

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

    from ops.share_cli import _print, send_share

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
