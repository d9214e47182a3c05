"""Test fixtures: the real Kafka broker and PostgreSQL that the suite starts itself, once per
session, and a faust worker per test on topics of its own (a unique prefix)."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import hypothesis  # noqa: F401  (imported early: its plugin's late import trips a CPython 3.11 AST bug)
import pytest

from ops.workers import WorkerProcess
from topics.settings import REPO_ROOT, Settings, settings

TEST_STATE = REPO_ROOT / ".govbus" / "test"


def pytest_configure(config):
    # the suite's own stack, on its own ports, beside any `make run`
    os.environ.setdefault("GOVBUS_STATE_DIR", str(TEST_STATE))
    os.environ.setdefault("GOVBUS_KAFKA_PORT", "19192")
    os.environ.setdefault("GOVBUS_PG_PORT", "15532")


LOCAL: dict[str, object] = {}  # the services this session started itself


@pytest.fixture
def own_kafka():
    """The suite's own Kafka broker (None when GOVBUS_KAFKA_BOOTSTRAP points elsewhere)."""
    return LOCAL.get("kafka")


@pytest.fixture
def own_postgres():
    """The suite's own PostgreSQL (None when GOVBUS_DATABASE_URL points elsewhere)."""
    return LOCAL.get("postgres")


@pytest.fixture(scope="session")
async def stack() -> Settings:
    from ops import db
    from ops.stack import LocalKafka, LocalPostgres

    s = settings()
    starts = []
    kafka = LocalKafka(s) if s.local_kafka else None
    pg = LocalPostgres(s) if s.local_postgres else None
    if kafka:
        # thousands of per-test topics from earlier sessions would only slow the broker down
        await kafka.reset()
        starts.append(kafka.start())
    if pg:
        starts.append(pg.start())
    await asyncio.gather(*starts)
    LOCAL.update(kafka=kafka, postgres=pg)
    if kafka:  # the suite's own clients are the broker's admin; tests of the principals use their own
        os.environ["GOVBUS_KAFKA_CONFIG"] = str(s.state_dir / "admin.properties")
    os.environ["GOVBUS_KAFKA_BOOTSTRAP"] = s.bootstrap
    os.environ["GOVBUS_DATABASE_URL"] = s.dsn
    await db.migrate(s.dsn)
    yield settings()
    if kafka:
        await kafka.stop()
    if pg:
        await pg.stop()


@dataclass
class Bus:
    """One test's own deployment: a topic prefix on the shared broker."""

    settings: Settings
    prefix: str

    def topic(self, name: str) -> str:
        return self.prefix + name

    def feed(self, department: str) -> str:
        return f"{self.prefix}govbus.feed.{department}"


@pytest.fixture
async def bus(stack: Settings, monkeypatch):
    from ops.bench.pipeline import drop_topics
    from topics.admin import apply_topics

    prefix = f"it-{uuid.uuid4().hex[:10]}."
    monkeypatch.setenv("GOVBUS_TOPIC_PREFIX", prefix)
    s = replace(stack, topic_prefix=prefix)
    await apply_topics(s)
    yield Bus(s, prefix)
    # each deployment has some 500 partitions, each an open file of the broker's: a session would otherwise
    # gather more than its file limit
    await drop_topics(s.bootstrap, prefix)


class Worker(WorkerProcess):
    def __init__(self, bus: Bus, tmp: Path, name: str = "worker"):
        super().__init__(bus.prefix, tmp, name)


@pytest.fixture
def workers(bus: Bus, tmp_path: Path):
    """Start workers of this test's deployment with `workers.start()`; all are stopped at the end."""

    class Pool(list):
        def start(self, name: str = "worker") -> Worker:
            w = self._new(name)
            w.start()
            return w

        async def started(self, name: str = "worker") -> Worker:
            """As start, without holding up the test's event loop (its clients, an in-process sink) meanwhile."""
            w = self._new(name)
            await w.started()
            return w

        def _new(self, name: str) -> Worker:
            w = Worker(bus, tmp_path, f"{name}{len(self)}")
            self.append(w)  # stopped at the end even if it fails to start
            return w

    pool = Pool()
    yield pool
    for w in pool:
        w.stop()


def other_database(dsn: str, name: str) -> str:
    """The same server's database `name`."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


@pytest.fixture
async def own_db(stack: Settings, request):
    """A database of this test's own, migrated: what the test writes, changes or destroys there touches no other
    test's ledger."""
    import asyncpg

    from ops import db

    name = f"{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = other_database(stack.dsn, name)
    await db.migrate(dsn)
    yield dsn
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture
async def ledger(bus: Bus):
    """The real ledger sink on this test's topics, running in the background."""
    from consumers.ledger import run_ledger

    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(bus.settings.bootstrap, bus.settings.dsn, bus.prefix, stop=stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def ledger_process(bus: Bus, tmp_path: Path):
    """The real ledger as the stack runs it, a process of its own on this test's topics, as its own principal with
    the rights the registry gives it: for the tests that load it with a whole stream, whose reading would otherwise
    share one event loop with the test's clients."""
    from tests.helpers import LedgerProcess, as_process, properties_file

    own = properties_file(await as_process(bus.settings, "ledger"), tmp_path / "ledger.properties")
    ledger = LedgerProcess(bus, tmp_path / "ledger.log", config=own)
    ledger.start()
    yield ledger
    alive = ledger.running()
    ledger.stop()
    assert alive, f"the ledger process ended during the test:\n{ledger.tail()}"
