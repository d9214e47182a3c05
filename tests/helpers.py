"""Small helpers for tests against the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from prometheus_client.parser import text_string_to_metric_families

from ops.bench.pipeline import produce_keyed, records_on  # noqa: F401  (re-exported for the tests)
from ops.seeds import approved_entry  # noqa: F401  (re-exported for the tests)
from ops.supervisor import read_state, same_process
from ops.workers import terminate
from schemas.codec import default_codec
from streams.rules.identifiers import resident_id_check_char
from topics import views
from topics.settings import REPO_ROOT, kafka_options

GOVBUS = str(Path(sys.executable).parent / "govbus")
PORT_VARS = ("GOVBUS_METRICS_PORT", "GOVBUS_LEDGER_METRICS_PORT", "GOVBUS_DEADLINES_METRICS_PORT",
             "GOVBUS_SUPERVISOR_METRICS_PORT")


def resident_id(body17: str = "51100219800101123") -> str:
    return body17 + resident_id_check_char(body17)


def delivery(publisher="NJ-GA", resource="GA-RK-001", subject=None, items=None, **extra) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC),
        "publisher": publisher,
        "resource_code": resource,
        "subject_id": subject or resident_id(),
        "items": items if items is not None else {"姓名": "张三", "户籍地址": "内江市市中区"},
        "system_code": None,
        **extra,
    }


async def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes = b"k") -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all")
    await p.start()
    try:
        for v in values:
            await p.send(topic, key=key, value=v)
        await p.flush()
    finally:
        await p.stop()


async def read_to_end(bootstrap: str, topic: str) -> list[bytes]:
    """Every value on `topic`, from its start to the end offsets at the time of asking."""
    return [r.value async for recs in views.read_to_end(bootstrap, topic) for r in recs]


async def consume(bootstrap: str, topic: str, *, count: int, timeout: float = 30.0,
                  settle: float = 0.0) -> list:
    """Records of `topic` from the start until `count` arrived (then `settle` more seconds) or timeout."""
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **kafka_options(),
                         group_id=None, auto_offset_reset="earliest",
                         enable_auto_commit=False, isolation_level="read_committed")
    await c.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < count:
            for recs in (await c.getmany(timeout_ms=200)).values():
                out.extend(recs)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            for recs in (await c.getmany(timeout_ms=200)).values():
                out.extend(recs)
    finally:
        await c.stop()
    return out


def decoded(records, name: str | None = None) -> list[dict]:
    codec = default_codec()
    return [codec.decode(r.value, name).record for r in records]


async def eventually(check, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


async def seed_catalog(bus, *entries: dict) -> None:
    """Put approved entries on the catalog topic directly (the catalog agent has tests of its own)."""
    codec = default_codec()
    p = AIOKafkaProducer(bootstrap_servers=bus.settings.bootstrap, **kafka_options(), acks="all")
    await p.start()
    try:
        for e in entries:
            await p.send(bus.topic("govbus.catalog"), key=e["resource_code"].encode(),
                         value=codec.encode("govbus.catalog.CatalogEntry", e))
        await p.flush()
    finally:
        await p.stop()


async def as_process(s, process: str):
    """The settings of bus process `process` (worker, ledger, deadlines) of the deployment `s` names, as its own
    principal with only the rights the registry gives it (a password just issued), as `govbus run` starts it."""
    from topics.access import apply_acls
    from topics.acls import process_principal

    await apply_acls(s)
    return await as_principal(s, process_principal(process, s.topic_prefix))


async def department(bus, code: str, password: str | None = None):
    """The settings of department `code` of this deployment, with a password just issued (or the one given)."""
    from topics.acls import department_principal

    return await as_principal(bus.settings, department_principal(code, bus.prefix), password)


async def as_principal(s, name: str, password: str | None = None):
    """The settings `s` as principal `name`, with a password just issued (or the one given), keeping the protocol,
    mechanism and CA of `s` (TLS too)."""
    from dataclasses import replace

    from topics.access import issue_passwords

    if password is None:
        password = (await issue_passwords(s, [name]))[name]
    return replace(s, kafka_security=replace(s.kafka_security, username=name, password=password))


def properties_file(s, path: Path) -> Path:
    """A client properties file for the settings `s` (GOVBUS_KAFKA_CONFIG for a process started with them)."""
    from ops.stack import java_properties

    path.write_text(java_properties(s.bootstrap, s.kafka_security))
    return path


async def connects(s) -> bool:
    """Whether a client with the settings `s` connects and is let in (TLS and SASL included)."""
    client = AIOKafkaClient(bootstrap_servers=s.bootstrap, request_timeout_ms=5000, **kafka_options(s))
    try:
        await client.bootstrap()
        return True
    except KafkaConnectionError:
        return False
    finally:
        await client.close()


async def reads(s, topic: str, group: str | None = None, rounds: int = 10, partition: int = 0) -> list:
    """The records of one partition of `topic` as `s` reads them (committing with `group`, if given).

    A topic `s` may not read raises TopicAuthorizationFailedError: the broker leaves out of its metadata answer every
    topic a principal may not describe, and reading implies describing. (Assigned such a topic, aiokafka's consumer
    would ask for its metadata again and again, logging an error each time, and fetch nothing.)"""
    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, **kafka_options(s), group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest")
    await c.start()
    try:
        if topic not in await c.topics():
            raise TopicAuthorizationFailedError(topic)
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        got = []
        for _ in range(rounds):
            got += (await c.getmany(tp, timeout_ms=500)).get(tp, [])
            if got:
                break
        if group is not None:
            await c.commit({tp: len(got)})
        return got
    finally:
        await c.stop()


async def ledger_rows(sql: str, *args, want: int = 1, timeout: float = 30.0):
    """Rows of a ledger query, once there are at least `want` of them (None after `timeout`)."""
    from consumers.queries import fetch
    from topics.settings import settings

    async def check():
        rows = await fetch(settings().dsn, sql, *args)
        return rows if len(rows) >= want else None

    return await eventually(check, timeout=timeout)


def govbus_on(bus, dsn: str, *args: str, timeout: float = 180, kafka_config: Path | None = None
              ) -> subprocess.CompletedProcess:
    """The govbus command on a test's deployment and database, as an operator runs it (with the admin's
    credentials, or those of `kafka_config`, a client properties file)."""

    env = {**os.environ, "GOVBUS_KAFKA_BOOTSTRAP": bus.settings.bootstrap, "GOVBUS_DATABASE_URL": dsn,
           "GOVBUS_TOPIC_PREFIX": bus.prefix, **({"GOVBUS_KAFKA_CONFIG": str(kafka_config)} if kafka_config else {})}
    return subprocess.run([str(Path(sys.executable).parent / "govbus"), *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=timeout)


class Deadlines:
    """The deadline service on a clock the test moves."""

    def __init__(self, bus, clock: list[str]):
        from streams.deadline_service import DeadlineService

        self.stopping = asyncio.Event()
        self.service = DeadlineService(bus.settings, clock=lambda: datetime.fromisoformat(clock[0]),
                                       tick_interval=0.2)

    async def start(self) -> None:
        await self.service.start()
        self.task = asyncio.create_task(self.service.run(self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 30)
        await self.service.stop()  # leaves its group


async def notices(bus, kind: str, want: int, timeout: float = 60) -> list[dict]:
    """The notices of one kind on the topic, once `want` different deadlines have one."""
    until = asyncio.get_running_loop().time() + timeout
    while True:
        got = [n for n in decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.notices"), count=10**6,
                                                timeout=1)) if n["kind"] == kind]
        if len({n["deadline_id"] for n in got}) >= want or asyncio.get_running_loop().time() > until:
            return got
        await asyncio.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LedgerProcess:
    """`govbus ledger run` as a child process on a test's deployment, as the stack runs it: beside the test's own
    clients rather than on their event loop. Its metrics on `port` when one is given."""

    def __init__(self, bus, log: Path, port: int | None = None, config: Path | None = None):
        self.log, self.port = log, port
        env = {k: v for k, v in os.environ.items() if k not in PORT_VARS}
        self.env = {**env, "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_KAFKA_BOOTSTRAP": bus.settings.bootstrap,
                    "GOVBUS_DATABASE_URL": bus.settings.dsn,
                    **({"GOVBUS_LEDGER_METRICS_PORT": str(port)} if port else {}),
                    **({"GOVBUS_KAFKA_CONFIG": str(config)} if config else {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([GOVBUS, "ledger", "run"], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stopped as the supervisor stops it (SIGTERM: the chain heads anchored on the way out)."""
        terminate(self.proc)

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Run:
    """`govbus run --no-prometheus` as a child process, on a test's deployment; without the demo unless asked."""

    def __init__(self, bus, tmp_path: Path, *, demo: bool = False):
        self.state_dir = tmp_path / "state"
        self.console = tmp_path / "console.log"
        self.ports = {var: free_port() for var in PORT_VARS}
        env = {**os.environ, "GOVBUS_KAFKA_BOOTSTRAP": bus.settings.bootstrap, "GOVBUS_DATABASE_URL": bus.settings.dsn,
               "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_STATE_DIR": str(self.state_dir),
               **{var: str(port) for var, port in self.ports.items()}}
        with open(self.console, "wb") as out:
            args = [GOVBUS, "run", *(() if demo else ("--no-demo",)), "--no-prometheus"]
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         cwd=REPO_ROOT)

    def output(self) -> str:
        return self.console.read_text(errors="replace")

    def children(self) -> dict[str, dict]:
        state = read_state(self.state_dir) or {}
        return {p["name"]: p for p in state.get("processes", [])}

    def running(self, name: str) -> int | None:
        """The pid of child `name` when the supervisor has it running (and it really runs)."""
        p = self.children().get(name)
        return p["pid"] if p and p["state"] == "running" and same_process(p["pid"], p["pid_start"]) else None

    def restarts(self) -> dict[str, float]:
        """govbus_process_restarts_total by process, from the supervisor's /metrics."""
        port = self.ports["GOVBUS_SUPERVISOR_METRICS_PORT"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {s.labels["process"]: s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "govbus_process_restarts_total"}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chromium_dom(url: str, tmp: Path) -> str:
    """The page at `url` as headless Chromium (Debian's) renders it: its DOM after the page's scripts ran."""
    import shutil

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'chromium'}",
            "--virtual-time-budget=10000", "--dump-dom", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def feed_records(n: int, subscriber: str = "NJ-MZ") -> list[tuple[bytes, bytes]]:
    """`n` feed records of `subscriber` under its subscription to GA-RK-001, as (key, value)."""
    from schemas.provenance import provenance_digest

    codec = default_codec()
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        subject = resident_id(f"5110021990010{i:04d}")
        rec = {"event_id": uuid.uuid4().hex, "subscriber": subscriber, "publisher": "NJ-GA",
               "resource_code": "GA-RK-001", "subject_id": subject, "system_code": None, "items": {"姓名": f"居民{i}"},
               "occurred_at": now, "delivered_at": now, "grant_id": f"subscription:GA-RK-001:{subscriber}",
               "purpose": None, "flags": []}
        rec["digest"] = provenance_digest("NJ-GA", "GA-RK-001", rec["event_id"], subject, rec["items"])
        out.append((subject.encode(), codec.encode("govbus.exchange.FeedDelivery", rec)))
    return out
