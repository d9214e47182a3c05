"""Benchmark of the delivery pipeline against a raw aiokafka loop on the same broker, in the same run.

The pipeline: a govbus worker decodes each publication, checks it against the catalog (one
source, resident identity number, catalogued items), consults the per-subject memory for
duplicate collection, records it as accepted, and delivers it to 10 departments, each under
its own directed authorization with its own projection of the items.

The baseline: a plain aiokafka consumer and producer that read the same bytes and write them
unchanged to 10 topics, committing as they go: what Kafka and the client cost with no rules.

    govbus bench pipeline [--deliveries N]

Both are fed N pre-encoded publications produced as fast as possible, after a warm-up of 100;
the rate is the publications after the warm-up divided by the time from their first produce to
the last of their outputs. Prints both and the ratio.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.codec import default_codec
from streams.rules.identifiers import resident_id_check_char
from topics.admin import apply_topics
from topics.registry import CATALOG, DELIVERIES, FEED_PARTITIONS, GRANTS, feed_name, name_of, publish_name
from topics.settings import Settings, kafka_options
from topics.views import partitions_of

FANOUT = ["NJ-YB", "NJ-RS", "NJ-WJ", "NJ-JY", "NJ-ZJ", "NJ-CZ", "NJ-SW", "NJ-STHJ", "NJ-JT", "NJ-MZ"]
PROVIDER = "WY-MZ"
ITEM_SETS = [["姓名"], ["保障类别"], ["姓名", "保障类别"], ["月救助金额"], ["姓名", "月救助金额"]]


def subjects(n: int) -> list[str]:
    out = []
    for i in range(n):
        body = f"511024{1950 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        out.append(body + resident_id_check_char(body))
    return out


def publications(n: int) -> list[tuple[bytes, bytes]]:
    codec = default_codec()
    now = datetime.now(UTC)
    out = []
    for i, sid in enumerate(subjects(n)):
        rec = {"event_id": f"bench-{i}-{uuid.uuid4().hex[:8]}", "occurred_at": now, "publisher": "WY-MZ",
               "resource_code": "WY-MZ-DB-001", "subject_id": sid, "system_code": "WY-MZ-JZ",
               "items": {"姓名": f"居民{i}", "保障类别": "城市低保", "月救助金额": 650.0}}
        out.append((sid.encode(), codec.encode("govbus.exchange.DataDelivery", rec)))
    return out


async def produce_keyed(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """(key, value) pairs, in order, as fast as the broker takes them."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(),
                         acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await p.start()
    try:
        for key, value in messages:
            await p.send(topic, key=key, value=value)
        await p.flush()
    finally:
        await p.stop()


async def records_on(bootstrap: str, topics: list[str]) -> int:
    """Records on these topics (the sum of their end offsets): progress without reading them."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_options(), group_id=None)
    await c.start()
    try:
        tps = [tp for t in topics for tp in await partitions_of(c, t)]
        return sum((await c.end_offsets(tps)).values())
    finally:
        await c.stop()


async def _timed(bootstrap: str, source: str, outputs: list[str], records: list[tuple[bytes, bytes]]) -> float:
    """Publications per second: a warm-up of 100 first (the consumer has its partitions and its
    connections), then the rest timed from the first produce to the last of their outputs."""
    warm, timed = records[:100], records[100:]
    await produce_keyed(bootstrap, source, warm)
    await _wait_outputs(bootstrap, outputs, len(warm) * len(outputs), timeout=120.0)
    t0 = time.monotonic()
    await produce_keyed(bootstrap, source, timed)
    t1 = await _wait_outputs(bootstrap, outputs, len(records) * len(outputs), timeout=max(120.0, len(timed) / 50))
    return len(timed) / (t1 - t0)


async def _wait_outputs(bootstrap: str, topics: list[str], want: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if await records_on(bootstrap, topics) >= want:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await records_on(bootstrap, topics)} of {want} outputs after {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def _seed(s: Settings) -> None:
    """The catalog entry and ten directed authorizations with different projections."""
    from ops.seeds import approved_entry

    codec = default_codec()
    entry = approved_entry("wy-subsidy.yaml")
    p = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(), acks="all")
    await p.start()
    try:
        await p.send(name_of(CATALOG, s.topic_prefix), key=b"WY-MZ-DB-001",
                     value=codec.encode("govbus.catalog.CatalogEntry", entry))
        for i, dept in enumerate(FANOUT):
            grant = {"grant_id": f"grant:bench-{i}", "grantee": dept, "provider": "WY-MZ",
                     "resource_code": "WY-MZ-DB-001", "items": ITEM_SETS[i % len(ITEM_SETS)], "subjects": [],
                     "purpose": "benchmark", "valid_from": (date.today() - timedelta(days=1)).isoformat(),
                     "valid_until": (date.today() + timedelta(days=1)).isoformat(), "revoked": False,
                     "revoked_reason": None, "granted_by": "WY-MZ", "request_id": f"bench-{i}",
                     "granted_at": datetime.now(UTC)}
            await p.send(name_of(GRANTS, s.topic_prefix), key=grant["grant_id"].encode(),
                         value=codec.encode("govbus.sharing.Grant", grant))
        await p.flush()
    finally:
        await p.stop()


async def _balanced(workers: list, partitions: int, timeout: float = 120.0) -> None:
    """Wait until the workers' latest assignments split the deliveries partitions between them."""
    deadline = time.monotonic() + timeout
    while True:
        latest = []
        for w in workers:
            found = ASSIGNED.findall(w.log.read_text(errors="replace")) if w.log.exists() else []
            latest.append({int(p) for p in found[-1].split(",") if p.strip()} if found else set())
        if all(latest) and sum(map(len, latest)) == partitions and set().union(*latest) == set(range(partitions)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers did not share the {partitions} partitions: {latest}")
        await asyncio.sleep(0.2)


ASSIGNED = re.compile(r"deliveries partitions \[([0-9, ]*)\]")


@asynccontextmanager
async def deployment(base: Settings, workdir: Path, workers: int = 1):
    """A fresh deployment (its own topic prefix) with the bench catalog entry and ten grants, and
    `workers` worker processes that have shared out the deliveries partitions."""
    from ops.workers import WorkerProcess

    s = replace(base, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    await apply_topics(s)
    await _seed(s)
    env = {"GOVBUS_KAFKA_BOOTSTRAP": s.bootstrap}
    if base.local_kafka:  # the local stack's admin: the children are told the broker, so not its state
        env["GOVBUS_KAFKA_CONFIG"] = str(base.state_dir / "admin.properties")
    procs = [WorkerProcess(s.topic_prefix, workdir, name=f"{s.topic_prefix}worker{i}", env=env)
             for i in range(workers)]
    try:
        for w in procs:
            w.start()
        await _balanced(procs, DELIVERIES.partitions)
        yield s
    finally:
        for w in procs:
            w.stop()
        await drop_topics(s.bootstrap, s.topic_prefix)


async def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete a bench run's topics: a broker kept for many runs would otherwise gather thousands."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_options())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        for i in range(0, len(topics), 100):
            await admin.delete_topics(topics[i:i + 100])
    finally:
        await admin.close()


async def bench_pipeline(base: Settings, n: int, workdir: Path, workers: int = 1) -> float:
    async with deployment(base, workdir, workers) as s:
        feeds = [feed_name(d, s.topic_prefix) for d in FANOUT]
        # where the provider publishes: its own inbound topic
        return await _timed(s.bootstrap, publish_name(PROVIDER, s.topic_prefix), feeds, publications(n))


async def _raw_loop(bootstrap: str, source: str, outputs: list[str], group: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, **kafka_options(),
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(),
                                acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            for recs in batches.values():
                for r in recs:
                    for t in outputs:
                        await producer.send(t, key=r.key, value=r.value)
            if batches:
                await producer.flush()  # at-least-once, like the pipeline: outputs before the commit
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


@asynccontextmanager
async def raw_deployment(base: Settings):
    """The baseline: an input topic, 10 output topics and the raw loop between them, running.
    Yields (input topic, output topics)."""
    prefix = f"raw-{uuid.uuid4().hex[:8]}."
    source = f"{prefix}in"
    outputs = [f"{prefix}out.{d}" for d in FANOUT]
    admin = AIOKafkaAdminClient(bootstrap_servers=base.bootstrap, **kafka_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, DELIVERIES.partitions, 1)]
                                  + [NewTopic(t, FEED_PARTITIONS, 1) for t in outputs])
    finally:
        await admin.close()
    await asyncio.sleep(1)
    stop = asyncio.Event()
    loop = asyncio.create_task(_raw_loop(base.bootstrap, source, outputs, f"{prefix}g", stop))
    try:
        yield source, outputs
    finally:
        stop.set()
        await loop
        await drop_topics(base.bootstrap, prefix)


async def bench_raw(base: Settings, n: int) -> float:
    async with raw_deployment(base) as (source, outputs):
        return await _timed(base.bootstrap, source, outputs, publications(n))


async def run(base: Settings, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        raw = await bench_raw(base, n)
        pipeline = await bench_pipeline(base, n, Path(tmp))
    print(f"{'':28}{'deliveries/s':>14}")
    print(f"{'raw aiokafka loop (x10)':28}{raw:14,.0f}")
    print(f"{'govbus pipeline (x10)':28}{pipeline:14,.0f}")
    print(f"{'ratio pipeline / raw':28}{pipeline / raw:14.2f}")
    return {"raw": raw, "pipeline": pipeline, "ratio": pipeline / raw}


async def run_scaling(base: Settings, n: int, counts: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """The same run with one worker, then two (the deliveries partitions split between them)."""
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            rates[k] = await bench_pipeline(base, n, Path(tmp), workers=k)
    print(f"{'workers':8}{'deliveries/s':>14}{'x one worker':>14}")
    for k, rate in rates.items():
        print(f"{k:<8}{rate:14,.0f}{rate / rates[counts[0]]:14.2f}")
    return rates
