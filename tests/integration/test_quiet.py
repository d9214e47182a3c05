"""A healthy worker is quiet: with publications flowing and both agents' tables written, its log
carries no ERROR or WARNING, so that one in production means something is wrong.

faust's stall check (every 2.5 broker commit intervals) reports a partition only once it has
been idle for `stream_processing_timeout`, five minutes by default. The worker here is given
a few seconds instead (faust's own STREAM_PROCESSING_TIMEOUT), so the check has judged every
partition many times over before the test ends; nothing else is changed from production.
"""

import asyncio
import re
import time
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from ops.kafka_io import send_share, submit_and_wait, subscribe
from ops.workers import WorkerProcess
from schemas.codec import default_codec
from tests.helpers import approved_entry, delivery, free_port, produce_keyed, records_on, resident_id, seed_catalog
from topics.settings import REPO_ROOT, kafka_options

pytestmark = pytest.mark.integration

STALL_TIMEOUT = 4.0  # seconds a partition may look idle before faust reports it
CHECK_EVERY = 2.5  # seconds: faust checks every 2.5 commit intervals, and the worker commits every second
RUN_FOR = 30.0  # seconds of publications: the check has then fired about ten times past its timeout
SEED = REPO_ROOT / "ops" / "seed" / "catalog"
LEVELS = re.compile(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback")


async def groups_ready(bus) -> None:
    """Return once the broker coordinates consumer groups. A broker that has just started answers
    COORDINATOR_NOT_AVAILABLE until its offsets topic exists, which aiokafka logs as an ERROR: it
    says the broker is still starting, not that anything is wrong with the worker."""
    c = AIOKafkaConsumer(bus.topic("govbus.deliveries"), bootstrap_servers=bus.settings.bootstrap,
                         **kafka_options(), group_id=f"{bus.prefix}ready", enable_auto_commit=False)
    await c.start()
    try:
        deadline = time.monotonic() + 60
        while not c.assignment() and time.monotonic() < deadline:
            await c.getmany(timeout_ms=200)
        assert c.assignment()
    finally:
        await c.stop()


async def publish_for(bus, seconds: float, first: int = 0, per_tick: int = 100, tick: float = 0.5) -> int:
    """Publications at a steady rate, each about a subject of its own; how many were sent."""
    codec = default_codec()
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        batch = []
        for n in range(first + sent, first + sent + per_tick):
            born = date(1950, 1, 1) + timedelta(days=n // 1000)
            subject = resident_id(f"511002{born:%Y%m%d}{n % 1000:03d}")
            batch.append((subject.encode(), codec.encode("govbus.exchange.DataDelivery", delivery(subject=subject))))
        await produce_keyed(bus.settings.bootstrap, bus.topic("govbus.deliveries"), batch)
        sent += per_tick
        await asyncio.sleep(tick)
    return sent


async def fed_at_least(bus, want: int) -> int:
    deadline = time.monotonic() + 60
    while (fed := await records_on(bus.settings.bootstrap, [bus.feed("NJ-MZ")])) < want:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return fed


def sample(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_worker_under_load_logs_no_error_or_warning(bus, tmp_path):
    await seed_catalog(bus, approved_entry("ga-population.yaml"), approved_entry("wy-subsidy.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    await groups_ready(bus)
    port = free_port()
    worker = WorkerProcess(bus.prefix, tmp_path, env={"STREAM_PROCESSING_TIMEOUT": str(STALL_TIMEOUT),
                                                      "GOVBUS_METRICS_PORT": str(port)})
    worker.start()
    try:
        # both agents write their tables, so both changelogs move past what the worker restored
        system = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": "WY-MZ",
                  **yaml.safe_load((SEED / "wy-system.yaml").read_text(encoding="utf-8")), "resource_codes": []}
        (registered,) = await submit_and_wait([(b"WY-MZ", "govbus.catalog.SystemRegistration", system)], 60)
        assert registered["status"] == "accepted"
        req = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "requester": "NJ-YB",
               "resource_code": "WY-MZ-DB-001", "purpose": "医保救助衔接", "items": ["姓名"], "subjects": [],
               "valid_from": date.today().isoformat(),
               "valid_until": (date.today() + timedelta(days=30)).isoformat()}
        (pending,) = await send_share("govbus.sharing.ShareRequest", req, req["event_id"], 60)
        assert pending["status"] == "pending"

        started = time.monotonic()
        sent = await publish_for(bus, RUN_FOR)
        assert time.monotonic() - started >= STALL_TIMEOUT + 4 * CHECK_EVERY
        # the worker did the work: every publication reached the subscriber's feed
        assert await fed_at_least(bus, sent) == sent
        await asyncio.sleep(2 * CHECK_EVERY)  # and the check runs on an idle worker too

        seen = await asyncio.to_thread(scrape, port)
        assert seen[sample("govbus_records_in_total", process="worker", topic="govbus.deliveries")] >= sent
        assert seen[sample("govbus_faust_total_events_total")] >= 2  # faust's own sensor: the agents' events
        assert seen[sample("govbus_faust_table_operations_total", table="table.sharing_state",
                           operation="keys_updated")] >= 1

        # restarted, the worker restores both tables from their changelogs and is just as quiet
        worker.stop()
        worker.start()
        started = time.monotonic()
        more = await publish_for(bus, RUN_FOR / 2, first=sent)
        assert time.monotonic() - started >= STALL_TIMEOUT + 4 * CHECK_EVERY
        assert await fed_at_least(bus, sent + more) >= sent + more
        await asyncio.sleep(2 * CHECK_EVERY)
    finally:
        worker.stop()

    log = worker.log.read_text(encoding="utf-8", errors="replace")
    assert log.count("Recovery complete") == 2  # the log of both runs, each from its start
    noisy = [line for line in log.splitlines() if LEVELS.search(line)]
    assert noisy == [], "\n".join(noisy[:20])
