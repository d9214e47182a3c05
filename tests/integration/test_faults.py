"""Faults against the real broker and database: a worker killed with SIGKILL mid-stream,
PostgreSQL stopped under the ledger, and bytes of every kind thrown at every inbound topic."""

import asyncio
import os
import random
import zlib

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumers.feed import Feed
from consumers.queries import fetch
from ops.bench.pipeline import subjects
from ops.kafka_io import subscribe
from schemas.codec import HEADER, default_codec
from schemas.errors import CodecError
from tests.helpers import (
    approved_entry,
    consume,
    decoded,
    delivery,
    eventually,
    produce,
    produce_keyed,
    read_to_end,
    records_on,
    seed_catalog,
)
from topics import registry
from topics.settings import kafka_options

DELIVERY = "govbus.exchange.DataDelivery"
# publications per fault run; GOVBUS_FAULT_DELIVERIES=3000 gives a quick local run of the same tests
N = int(os.environ.get("GOVBUS_FAULT_DELIVERIES", "100000"))
FEEDS = ("NJ-MZ", "NJ-RS")


async def topic_size(bus, topic: str) -> int:
    return await records_on(bus.settings.bootstrap, [topic])


async def feed_ids(bus, dept: str) -> set[str]:
    """The event ids on a department's feed, read to its end."""
    codec = default_codec()
    return {codec.decode(v, "govbus.exchange.FeedDelivery").record["event_id"]
            for v in await read_to_end(bus.settings.bootstrap, bus.feed(dept))}


async def ledger_count(bus, sql: str, *args) -> int:
    (row,) = await fetch(bus.settings.dsn, sql, *args)
    return row[0]


async def prepare(bus) -> None:
    """The catalog entry and two subscribers, in place before any worker starts."""
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    await subscribe("NJ-RS", "GA-RK-001", True)


def publications(n: int) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    """n publications keyed by subject, as departments send them (spread over all partitions)."""
    codec = default_codec()
    records = [delivery(subject=s, items={"姓名": f"居民{i}"}) for i, s in enumerate(subjects(n))]
    return ([(r["subject_id"].encode(), codec.encode(DELIVERY, r)) for r in records],
            {r["event_id"] for r in records})


async def stream_with_a_fault(bus, n: int, fault) -> None:
    """Publish n deliveries; `fault()` strikes once a quarter has reached a feed; then every
    delivery must reach both feeds and the ledger, and a subscriber reads each exactly once."""
    messages, ids = publications(n)
    sending = asyncio.create_task(produce_keyed(bus.settings.bootstrap, bus.topic("govbus.deliveries"), messages))

    async def some_done():
        return await topic_size(bus, bus.feed("NJ-MZ")) >= n // 4

    assert await eventually(some_done, timeout=300, interval=0.5)
    await fault()
    await sending

    async def all_done():
        for dept in FEEDS:
            if await topic_size(bus, bus.feed(dept)) < n or not await feed_ids(bus, dept) >= ids:
                return False
        return True

    assert await eventually(all_done, timeout=900, interval=1)
    seen: list[str] = []
    distinct: set[str] = set()

    async def read_all():
        async with Feed("NJ-MZ", group_id="after-fault") as feed:
            async for rec in feed:
                seen.append(rec.event_id)
                distinct.add(rec.event_id)
                if len(distinct) == n:
                    return

    await asyncio.wait_for(read_all(), 300)
    assert len(seen) == len(distinct) == n  # the SDK dropped whatever the fault made the bus send twice

    async def ledger_complete():
        got = await ledger_count(bus, "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)",
                                 list(ids))
        return got == 2 * n

    assert await eventually(ledger_complete, timeout=600, interval=2)
    assert await ledger_count(bus, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)", list(ids)) == n


async def limit_feed(bus, dept: str, max_bytes: int | None) -> None:
    """Set, or lift, the broker's size limit for a record batch on a department's feed topic."""
    configs = registry.feed(dept).configs() | ({"max.message.bytes": str(max_bytes)} if max_bytes else {})
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap, **kafka_options())
    await admin.start()
    try:
        (answer,) = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, bus.feed(dept), configs)])
        assert [r[0] for r in answer.resources] == [0], answer  # no error code
    finally:
        await admin.close()


async def committed(bus) -> int:
    """Deliveries the delivery stream's consumer group has committed, over all partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap, **kafka_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{bus.prefix}govbus-deliveries")
    finally:
        await admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == bus.topic("govbus.deliveries"))


async def test_outputs_the_broker_refuses_are_sent_again_and_nothing_after_them_is_committed(bus, workers):
    await prepare(bus)
    await limit_feed(bus, "NJ-RS", 64)  # every record batch for NJ-RS is now too large for the broker
    workers.start()
    messages, ids = publications(200)
    sending = asyncio.create_task(produce_keyed(bus.settings.bootstrap, bus.topic("govbus.deliveries"), messages))
    await asyncio.sleep(8)  # batches judged, NJ-MZ's outputs taken, NJ-RS's refused, read again, refused...
    assert await topic_size(bus, bus.feed("NJ-RS")) == 0
    assert await committed(bus) == 0
    await limit_feed(bus, "NJ-RS", None)
    await sending

    async def delivered():
        return await feed_ids(bus, "NJ-RS") >= ids and await committed(bus) == len(ids)

    assert await eventually(delivered, timeout=60, interval=1)
    assert await feed_ids(bus, "NJ-MZ") == ids  # sent more than once, under the same ids


async def test_a_worker_killed_mid_stream_loses_nothing_and_subscribers_see_no_duplicate(bus, workers,
                                                                                          ledger_process):
    await prepare(bus)
    first = workers.start()

    async def kill():
        first.kill()  # SIGKILL, mid-stream: nothing flushed, nothing committed on the way out
        await workers.started()

    await stream_with_a_fault(bus, N, kill)


async def test_two_workers_one_stopped_and_started_again_lose_nothing(bus, workers, ledger_process):
    await prepare(bus)
    workers.start()
    second = workers.start()

    async def rebalance():
        await second.stopped()  # its partitions move to the other worker, and back when it returns
        await asyncio.sleep(2)
        await second.started()

    await stream_with_a_fault(bus, N, rebalance)


async def test_a_broker_restart_mid_stream_loses_nothing(bus, workers, ledger_process, own_kafka):
    if own_kafka is None:
        pytest.skip("restarting the broker needs the suite's own; GOVBUS_KAFKA_BOOTSTRAP points elsewhere")
    await prepare(bus)
    workers.start()

    async def restart():
        await own_kafka.stop()
        await asyncio.sleep(3)
        await own_kafka.start()

    await stream_with_a_fault(bus, N, restart)


async def test_the_ledger_waits_out_a_database_outage_mid_stream_and_catches_up(bus, workers, ledger_process,
                                                                               own_postgres):
    if own_postgres is None:
        pytest.skip("stopping PostgreSQL needs the suite's own server; GOVBUS_DATABASE_URL points elsewhere")
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    messages, ids = publications(N)
    sending = asyncio.create_task(produce_keyed(bus.settings.bootstrap, bus.topic("govbus.deliveries"), messages))
    ledgered = "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)"

    async def some_ledgered():
        return await ledger_count(bus, ledgered, list(ids)) >= N // 4

    assert await eventually(some_ledgered, timeout=300, interval=1)
    await own_postgres.stop()
    try:
        before = await topic_size(bus, bus.feed("NJ-MZ"))
        await asyncio.sleep(30)  # the stream goes on; the ledger keeps its place and retries
        after = await topic_size(bus, bus.feed("NJ-MZ"))
        assert after > before or after >= N  # feeds do not wait for the database
        assert ledger_process.running(), ledger_process.tail()
    finally:
        await own_postgres.start()
    await sending

    fed = "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)"

    async def caught_up():
        return await ledger_count(bus, ledgered, list(ids)) == N and await ledger_count(bus, fed, list(ids)) == N

    assert await eventually(caught_up, timeout=600, interval=2)


def fuzz_corpus(valid: list[bytes], count: int, seed: int) -> list[bytes]:
    """Random bytes, truncations, and single-byte mutations of valid events."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        base = rnd.choice(valid)
        kind = i % 4
        if kind == 0:
            out.append(rnd.randbytes(rnd.randrange(0, 64)))
        elif kind == 1:
            out.append(base[: rnd.randrange(0, len(base))])
        elif kind == 2:
            b = bytearray(base)
            pos = rnd.randrange(HEADER, len(b))
            b[pos] = rnd.randrange(256)
            out.append(bytes(b))
        else:
            out.append(base + rnd.randbytes(rnd.randrange(1, 8)))
    return out


@pytest.mark.parametrize("topic", ["govbus.deliveries", "govbus.catalog.inbox", "govbus.sharing.inbox"])
async def test_any_bytes_on_an_inbound_topic_are_rejected_or_handled_and_the_worker_goes_on(bus, workers, topic):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    w = workers.start()
    codec = default_codec()
    valid = [codec.encode(DELIVERY, delivery()) for _ in range(5)]
    corpus = fuzz_corpus(valid, 200, seed=zlib.crc32(topic.encode()))
    undecodable = 0
    for data in corpus:
        try:
            codec.decode(data)
        except CodecError:
            undecodable += 1
    await produce(bus.settings.bootstrap, bus.topic(topic), corpus)
    marker = delivery()
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"), [codec.encode(DELIVERY, marker)])

    async def marker_arrived():
        return marker["event_id"] in await feed_ids(bus, "NJ-MZ")

    assert await eventually(marker_arrived, timeout=60)
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=undecodable,
                                    timeout=60))
    from_topic = [r for r in rejects if r["source_topic"] == bus.topic(topic)]
    assert len(from_topic) >= undecodable > 0
    assert all(r["reason"] for r in from_topic)
    assert not any(r["code"] == "internal_error" for r in rejects), [r["reason"] for r in rejects]
    assert w.proc.poll() is None
