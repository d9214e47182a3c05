"""Faults against the real broker and database: a worker killed with SIGKILL mid-stream,
PostgreSQL stopped under the ledger, and bytes of every kind thrown at every inbound topic."""

import asyncio
import random
import zlib

import pytest

from consumers.feed import Feed
from ops.bench_pipeline import subjects
from ops.cli import _subscribe
from ops.db import fetch
from schemas.codec import HEADER, default_codec
from schemas.errors import CodecError
from tests.helpers import approved_entry, consume, decoded, delivery, eventually, produce, seed_catalog

DELIVERY = "govbus.exchange.DataDelivery"


async def count_feed(bus, dept: str) -> set[str]:
    return {r["event_id"] for r in decoded(await consume(bus.settings.bootstrap, bus.feed(dept), count=10**7,
                                                         timeout=1))}


async def ledger_count(bus, sql: str, *args) -> int:
    (row,) = await fetch(bus.settings.dsn, sql, *args)
    return row[0]


async def prepare(bus) -> None:
    """The catalog entry and two subscribers, in place before any worker starts."""
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await _subscribe("NJ-MZ", "GA-RK-001", True)
    await _subscribe("NJ-RS", "GA-RK-001", True)


async def stream_with_a_fault(bus, workers, n: int, fault) -> None:
    """Publish n deliveries; `fault()` strikes once a quarter has reached a feed; then every
    delivery must reach both feeds and the ledger, and a subscriber reads each exactly once."""
    codec = default_codec()
    records = [delivery(subject=s, items={"姓名": f"居民{i}"}) for i, s in enumerate(subjects(n))]
    ids = {r["event_id"] for r in records}
    sending = asyncio.create_task(produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                                          [codec.encode(DELIVERY, r) for r in records]))

    async def some_done():
        return len(await count_feed(bus, "NJ-MZ")) >= n // 4

    assert await eventually(some_done, timeout=120)
    await fault()
    await sending

    async def all_done():
        return await count_feed(bus, "NJ-MZ") >= ids and await count_feed(bus, "NJ-RS") >= ids

    assert await eventually(all_done, timeout=300)
    seen: list[str] = []

    async def read_all():
        async with Feed("NJ-MZ", group_id="after-kill") as feed:
            async for rec in feed:
                seen.append(rec.event_id)
                if len(set(seen)) == n:
                    return

    await asyncio.wait_for(read_all(), 120)
    assert len(seen) == len(set(seen)) == n  # the SDK dropped whatever the restart sent twice

    async def ledger_complete():
        got = await ledger_count(bus, "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)",
                                 list(ids))
        return got == 2 * n

    assert await eventually(ledger_complete, timeout=120)
    assert await ledger_count(bus, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)", list(ids)) == n


async def test_a_worker_killed_mid_stream_loses_nothing_and_subscribers_see_no_duplicate(bus, workers, ledger):
    await prepare(bus)
    first = workers.start()

    async def kill():
        first.kill()  # SIGKILL, mid-stream: nothing flushed, nothing committed on the way out
        workers.start()

    await stream_with_a_fault(bus, workers, 3000, kill)


async def test_two_workers_one_stopped_and_started_again_lose_nothing(bus, workers, ledger):
    await prepare(bus)
    workers.start()
    second = workers.start()

    async def rebalance():
        second.stop()  # its partitions move to the other worker, and back when it returns
        await asyncio.sleep(2)
        second.start()

    await stream_with_a_fault(bus, workers, 3000, rebalance)


async def test_a_broker_restart_mid_stream_loses_nothing(bus, workers, ledger, own_kafka):
    if own_kafka is None:
        pytest.skip("restarting the broker needs the suite's own; GOVBUS_KAFKA_BOOTSTRAP points elsewhere")
    await prepare(bus)
    workers.start()

    async def restart():
        await own_kafka.stop()
        await asyncio.sleep(3)
        await own_kafka.start()

    await stream_with_a_fault(bus, workers, 3000, restart)


async def test_the_ledger_waits_out_a_database_outage_and_catches_up(bus, workers, ledger, own_postgres):
    if own_postgres is None:
        pytest.skip("stopping PostgreSQL needs the suite's own server; GOVBUS_DATABASE_URL points elsewhere")
    n = 500
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await _subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    codec = default_codec()
    records = [delivery(subject=s) for s in subjects(n)]
    ids = [r["event_id"] for r in records]
    pg = own_postgres
    await pg.stop()
    try:
        await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                      [codec.encode(DELIVERY, r) for r in records])
        await asyncio.sleep(30)  # the stream goes on; the ledger keeps its place and retries
        assert len(await count_feed(bus, "NJ-MZ")) == n
        assert not ledger.done()
    finally:
        await pg.start()

    async def caught_up():
        return await ledger_count(bus, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)", ids) == n

    assert await eventually(caught_up, timeout=120)
    assert await ledger_count(bus, "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)", ids) == n


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
    await _subscribe("NJ-MZ", "GA-RK-001", True)
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
        return marker["event_id"] in await count_feed(bus, "NJ-MZ")

    assert await eventually(marker_arrived, timeout=60)
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=undecodable,
                                    timeout=60))
    from_topic = [r for r in rejects if r["source_topic"] == bus.topic(topic)]
    assert len(from_topic) >= undecodable > 0
    assert all(r["reason"] for r in from_topic)
    assert not any(r["code"] == "internal_error" for r in rejects), [r["reason"] for r in rejects]
    assert w.proc.poll() is None
