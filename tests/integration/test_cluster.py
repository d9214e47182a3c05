"""A three-broker KRaft cluster of its own under the bus: topics replicated as declared, a broker killed with SIGKILL
mid-stream and brought back, then the controller leader killed, and nothing lost, repeated or waited on forever."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from consumers.feed import Feed
from consumers.ledger import run_ledger
from consumers.queries import fetch
from ops.bench.pipeline import drop_topics, subjects
from ops.kafka_io import subscribe
from ops.stack import LocalKafka
from ops.status import collect, replica_problems
from ops.workers import WorkerProcess
from schemas.codec import default_codec
from streams.deadline_service import DeadlineService
from tests.conftest import Bus
from tests.helpers import approved_entry, consume, decoded, delivery, eventually, produce, records_on, seed_catalog
from topics import registry
from topics.admin import apply_topics, brokers, led, metadata_from
from topics.settings import kafka_options, settings

pytestmark = pytest.mark.integration
DELIVERY = "govbus.exchange.DataDelivery"
FEEDS = ("NJ-MZ", "NJ-RS")
DEADLINES = 20
PACE = 0.2  # seconds between two publications: the stream runs through both faults, a few hundred in all
RESUMED = 60.0  # how long the bus may take to deliver again with a broker lost


@pytest.fixture(scope="module")
async def cluster(stack, tmp_path_factory):
    """Three combined broker+controller nodes on ports of their own (the suite's client port + 20 onwards)."""
    base = settings()
    s = replace(base, state_dir=tmp_path_factory.mktemp("cluster"), kafka_port=base.kafka_port + 20,
                kafka_bootstrap=None, kafka_brokers=3)
    kafka = LocalKafka(s)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


@pytest.fixture
async def on_cluster(cluster, monkeypatch):
    """This test's deployment on the cluster, all three nodes up (a test that failed may have left one down): every
    client of the bus (and its worker process) goes there."""
    for node in cluster.nodes:
        if node.pid() is None:
            await cluster.start_node(node.node_id)
    prefix = f"cl-{uuid.uuid4().hex[:10]}."
    for var, value in {"GOVBUS_KAFKA_BOOTSTRAP": cluster.bootstrap,
                       "GOVBUS_KAFKA_CONFIG": str(cluster.admin_properties()),
                       "GOVBUS_KAFKA_BROKERS": "3", "GOVBUS_TOPIC_PREFIX": prefix}.items():
        monkeypatch.setenv(var, value)
    return Bus(settings(), prefix)


async def admin_client(bus) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap, **kafka_options(), request_timeout_ms=10_000)
    await admin.start()
    return admin


async def under_replicated(bus) -> list[str]:
    """The partitions of this deployment and of the broker's own topics with fewer in-sync replicas than replicas."""
    admin = await admin_client(bus)
    try:
        names = [n for n in await admin.list_topics() if n.startswith((bus.prefix, "__"))]
        return [f"{t['topic']}[{p['partition']}]" for t in await admin.describe_topics(names)
                for p in t["partitions"] if len(p["isr"]) < len(p["replicas"])]
    finally:
        await admin.close()


async def fully_replicated(bus, timeout: float = 120.0) -> None:
    async def check():
        return not await under_replicated(bus)

    assert await eventually(check, timeout=timeout, interval=1), await under_replicated(bus)


def command(action: str, deadline_id: str, **fields) -> bytes:
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "action": action,
           "deadline_id": deadline_id, "case_type": None, "case_id": None, "party": None, "received_on": None,
           "extension_days": None, "approved_by": None, "actor": "test", **fields}
    return default_codec().encode("govbus.deadlines.DeadlineCommand", rec)


async def notices(bus, kind: str, want: int, timeout: float) -> list[dict]:
    """The committed notices of one kind, once there are `want` (then a moment more, for any repeat)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [n for n in decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.notices"), count=10**6,
                                                timeout=1)) if n["kind"] == kind]
        if len(got) >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


class Publisher:
    """A department publishing at a steady pace through the faults: keyed by subject, acks=all, idempotent; a
    publication counts as accepted once the cluster has acknowledged it."""

    def __init__(self, bus):
        self.bus = bus
        self.topic = registry.publish_name("NJ-GA", bus.prefix)
        self.accepted: set[str] = set()
        self.refused: list[tuple[bytes, bytes, str]] = []
        self.stop = asyncio.Event()
        self.codec = default_codec()

    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bus.settings.bootstrap, **kafka_options(), acks="all",
                                    enable_idempotence=True, request_timeout_ms=30_000)
        await producer.start()
        pending = []
        try:
            for i, subject in enumerate(subjects(5000)):
                if self.stop.is_set():
                    break
                rec = delivery(subject=subject, items={"姓名": f"居民{i}"})
                key, value = subject.encode(), self.codec.encode(DELIVERY, rec)
                try:
                    pending.append((await producer.send(self.topic, key=key, value=value), key, value,
                                    rec["event_id"]))
                except KafkaError:
                    self.refused.append((key, value, rec["event_id"]))
                await asyncio.sleep(PACE)
            for fut, key, value, event_id in pending:
                try:
                    await asyncio.wait_for(fut, 60)
                    self.accepted.add(event_id)
                except (KafkaError, TimeoutError):  # the department sends it again, under the same id
                    self.refused.append((key, value, event_id))
            for key, value, event_id in self.refused:
                await asyncio.wait_for(producer.send_and_wait(self.topic, key=key, value=value), 60)
                self.accepted.add(event_id)
        finally:
            await producer.stop()


class Subscriber:
    """A department's system reading its feed through the SDK the whole time, faults included."""

    def __init__(self, department: str):
        self.department = department
        self.seen: list[str] = []
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        async with Feed(self.department, group_id=f"{self.department}.cluster-test") as feed:
            async for rec in feed:
                assert rec.verify()
                self.seen.append(rec.event_id)

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def delivers_again(bus, since: int) -> bool:
    """True once a feed has grown past `since` records within RESUMED seconds: the bus goes on without the node."""

    async def grew():
        try:
            return await records_on(bus.settings.bootstrap, [bus.feed("NJ-MZ")]) > since
        except KafkaError:  # asked of the lost broker before the cluster moved its partitions
            return False

    return await eventually(grew, timeout=RESUMED, interval=0.5)


async def reported_missing(bus, node_id: int) -> dict | None:
    """What `govbus status` says of the brokers, once it names `node_id` as lost."""
    broker = (await collect(bus.settings))["broker"]
    return broker if broker.get("missing_brokers") == [node_id] else None


@pytest.mark.timeout(900)
async def test_a_broker_and_then_the_controller_leader_lost_mid_stream_lose_and_repeat_nothing(
        cluster, on_cluster, tmp_path):
    bus = on_cluster
    report = await apply_topics(bus.settings)
    assert report.brokers == 3 and not report.drift
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    for dept in FEEDS:
        await subscribe(dept, "GA-RK-001", True)

    clock = ["2026-12-01T10:00:00+08:00"]
    service = DeadlineService(bus.settings, clock=lambda: datetime.fromisoformat(clock[0]), tick_interval=0.2)
    await service.start()
    stopping = asyncio.Event()
    deadlines = asyncio.create_task(service.run(stopping))
    ledger = asyncio.create_task(run_ledger(bus.settings.bootstrap, bus.settings.dsn, bus.prefix, stop=stopping))
    worker = WorkerProcess(bus.prefix, tmp_path)
    worker.start()
    subscribers = [Subscriber(dept) for dept in FEEDS]
    publisher = Publisher(bus)
    publishing = asyncio.create_task(publisher.run())
    try:
        # share requests received Tuesday 2026-12-01: reminded on 2026-12-11, breached after 2026-12-15
        await produce(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), [
            command("start", f"share_request:{i}", case_type="share_request", case_id=str(i), party="NJ-GA",
                    received_on="2026-12-01") for i in range(DEADLINES)])
        assert len(await notices(bus, "started", DEADLINES, timeout=60)) == DEADLINES

        async def flowing():
            return await records_on(bus.settings.bootstrap, [bus.feed("NJ-MZ")]) >= 50

        assert await eventually(flowing, timeout=120, interval=0.5)
        await fully_replicated(bus)  # the groups' offsets and the transactions' log too, created on first use

        # a broker lost with SIGKILL (not the controller leader: that one comes next), and a reminder falls due
        leader = (await cluster.quorum())["leader"]
        lost = next(n for n in cluster.nodes if n.node_id != leader)
        before = await records_on(bus.settings.bootstrap, [bus.feed("NJ-MZ")])
        lost.kill()
        clock[0] = "2026-12-11T00:30:00+08:00"
        assert await delivers_again(bus, before)
        shown = await eventually(lambda: reported_missing(bus, lost.node_id), timeout=RESUMED, interval=1)
        assert shown and shown["under_replicated"] > 0 and shown["below_min_insync_count"] == 0  # writes go on
        assert any(f"broker(s) {lost.node_id} of the cluster not answering" in line
                   for line in replica_problems(shown))
        assert len(await notices(bus, "reminder", DEADLINES, timeout=RESUMED)) == DEADLINES
        await asyncio.sleep(5)
        await cluster.start_node(lost.node_id)
        await fully_replicated(bus)

        # the controller leader lost with SIGKILL: the other two elect a new one, and the breaches fall due meanwhile
        quorum = await cluster.quorum()
        before = await records_on(bus.settings.bootstrap, [bus.feed("NJ-MZ")])
        cluster.node(quorum["leader"]).kill()
        clock[0] = "2026-12-16T00:00:01+08:00"
        assert await delivers_again(bus, before)
        assert len(await notices(bus, "breach", DEADLINES, timeout=RESUMED)) == DEADLINES
        after = await cluster.quorum()
        assert after["leader"] != quorum["leader"] and after["epoch"] > quorum["epoch"]
        await asyncio.sleep(5)
        await cluster.start_node(quorum["leader"])
        await fully_replicated(bus)
        await asyncio.sleep(5)  # the stream goes on a little with the whole cluster back
        publisher.stop.set()
        await asyncio.wait_for(publishing, 300)
        accepted = publisher.accepted
        assert len(accepted) > 200

        async def everyone_has_all():
            for s in subscribers:
                if s.task.done():
                    s.task.result()  # a subscriber that failed says why
            return all(set(s.seen) >= accepted for s in subscribers)

        assert await eventually(everyone_has_all, timeout=300, interval=1)
        for s in subscribers:  # every accepted publication once at every authorized subscriber, nothing else
            assert len(s.seen) == len(set(s.seen)) and set(s.seen) == accepted, s.department

        async def ledgered():
            (fed,) = await fetch(bus.settings.dsn,
                                 "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)", list(accepted))
            return fed[0] == len(FEEDS) * len(accepted)

        assert await eventually(ledgered, timeout=300, interval=2)
        (row,) = await fetch(bus.settings.dsn, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)",
                             list(accepted))
        assert row[0] == len(accepted)

        assert replica_problems((await collect(bus.settings))["broker"]) == []
        await asyncio.sleep(2)  # the deadline service went on ticking: still one notice of each, none repeated
        for kind in ("started", "reminder", "breach"):
            got = await notices(bus, kind, DEADLINES, timeout=10)
            assert len(got) == DEADLINES and len({n["deadline_id"] for n in got}) == DEADLINES, kind
        assert worker.proc.poll() is None and not deadlines.done() and not ledger.done()
    finally:
        publisher.stop.set()
        for s in subscribers:
            await s.stop()
        stopping.set()
        await asyncio.wait_for(asyncio.gather(deadlines, ledger, publishing, return_exceptions=True), 60)
        await service.stop()
        worker.stop()
        await drop_topics(bus.settings.bootstrap, bus.prefix)


async def test_topics_are_replicated_three_times_and_a_hand_made_one_is_reported(cluster, on_cluster):
    bus = on_cluster
    rejects = bus.topic(registry.REJECTS.name)
    admin = await admin_client(bus)
    try:
        # someone created the rejects topic by hand, with one copy
        await admin.create_topics([NewTopic(rejects, registry.REJECTS.partitions, 1,
                                            topic_configs={**registry.REJECTS.configs(), "min.insync.replicas": "1"})])

        async def replicas(topic: str, spec: registry.TopicSpec) -> set[int] | None:
            """The replication factors of a topic's partitions, once the broker asked knows all of them."""
            (meta,) = await admin.describe_topics([topic])
            return {len(p["replicas"]) for p in meta["partitions"]} if len(meta["partitions"]) == spec.partitions \
                else None

        # applied at once: the broker apply asks may not know the new topic's partitions yet, and must be asked again
        report = await apply_topics(bus.settings)
        assert await eventually(lambda: replicas(rejects, registry.REJECTS)) == {1}
        assert report.brokers == 3 and rejects not in report.created
        accepted = bus.topic(registry.ACCEPTED.name)
        assert accepted in report.created
        # apply returns once every broker knows what it created, so the next client finds it whichever it asks
        nodes = await brokers(admin)
        assert len(nodes) == 3
        for node in nodes:
            answer = await metadata_from(admin, node, report.created)
            assert sorted(m["topic"] for m in answer if led(m)) == report.created, node
        assert await eventually(lambda: replicas(accepted, registry.ACCEPTED)) == {3}

        async def min_isr() -> list[str] | None:
            """The topic's min.insync.replicas, once the broker asked has the new topic's configs."""
            (configs,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, accepted, {"min.insync.replicas": None})])
            return [e[1] for e in configs.resources[0][4]] or None

        assert await eventually(min_isr) == ["2"]
    finally:
        await admin.close()
        await drop_topics(bus.settings.bootstrap, bus.prefix)
    assert [d.split(";")[0] for d in report.drift] == [
        f"{rejects}: replication factor 1, declared 3 for a cluster of 3 brokers",
        f"{rejects}: min.insync.replicas=1, declared 2 for a cluster of 3 brokers",
    ]
    assert "reassign the partitions" in report.drift[0] and "kafka-configs.sh --alter" in report.drift[1]
