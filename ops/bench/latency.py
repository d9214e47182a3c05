"""End-to-end latency at a steady rate: from a department's publication to its arrival on a feed.

    govbus bench latency [--rate 1000] [--seconds 30] [--workers 1]

A fresh deployment (catalog entry, ten directed authorizations, `workers` workers) as in
`govbus bench pipeline`. A publisher makes `rate` publications a second, evenly paced, each
stamped with the time it is made (`occurred_at`), and sends what is due every 5 ms; a subscriber
reads one department's feed (every publication reaches all ten) and takes arrival time minus
`occurred_at`. The first 5 seconds are a warm-up and are not counted. The same publisher and
subscriber are first run around the best pass-through of `govbus bench pipeline` (its own process;
one of its ten outputs is read): the floor that Kafka, the clients and this machine set. Prints p50, p99 and
max of both.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ops.bench.pipeline import deployment, raw_deployment, subjects
from schemas.codec import default_codec
from streams.outputs import Outputs
from topics.settings import Settings, kafka_options

WARMUP = 5.0
TICK = 0.005  # the publisher sends what is due every 5 ms


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _publish(bootstrap: str, topic: str, rate: int, seconds: float) -> int:
    """`rate` publications a second for `seconds`, in ticks of TICK: each publication is stamped when
    it is made, and a tick's publications leave as one record batch per partition, as a department's
    system exporting a steady stream would send them. (A send() per record, paced to the millisecond,
    costs this client about 0.4 ms of CPU each: on a small machine shared with the broker and the
    worker, the measuring would slow what it measures.)"""
    codec = default_codec()
    ids = subjects(min(int(rate * seconds), 50_000))
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all", linger_ms=0)
    await p.start()
    out = Outputs(p, {topic: len(await p.partitions_for(topic))})
    acks = []
    sent = 0
    try:
        start = time.monotonic()
        total = int(rate * seconds)
        while sent < total:
            wait = start + sent / rate + TICK - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            while sent < total and start + sent / rate <= time.monotonic():
                sid = ids[sent % len(ids)]
                rec = {"event_id": f"lat-{sent}-{uuid.uuid4().hex[:8]}", "occurred_at": datetime.now(UTC),
                       "publisher": "WY-MZ", "resource_code": "WY-MZ-DB-001", "subject_id": sid,
                       "system_code": "WY-MZ-JZ", "items": {"姓名": f"居民{sent}", "保障类别": "城市低保",
                                                             "月救助金额": 650.0}}
                out.add(topic, sid.encode(), codec.encode("govbus.exchange.DataDelivery", rec))
                sent += 1
            acks.append(await out.submit())
        await asyncio.gather(*acks)
    finally:
        await p.stop()
    return sent


async def _listen(bootstrap: str, topic: str, counted_from: float, want: int, out: list[float],
                  timeout: float) -> None:
    codec = default_codec()
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **kafka_options(),
                         group_id=None, auto_offset_reset="earliest",
                         fetch_max_wait_ms=10)
    await c.start()
    seen = 0
    try:
        deadline = time.monotonic() + timeout
        while seen < want and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=100)).values():
                arrived = time.time()
                for r in recs:
                    seen += 1
                    sent_at = codec.decode(r.value).record["occurred_at"].timestamp()  # feed record or raw copy
                    if sent_at >= counted_from:
                        out.append(arrived - sent_at)
    finally:
        await c.stop()


async def _measure(bootstrap: str, source: str, output: str, rate: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    total = int(rate * (seconds + WARMUP))
    listener = asyncio.create_task(_listen(bootstrap, output, time.time() + WARMUP, total, latencies,
                                           seconds * 3 + 60))
    await asyncio.sleep(1)  # the subscriber is reading
    t0 = time.monotonic()
    sent = await _publish(bootstrap, source, rate, seconds + WARMUP)
    achieved = sent / (time.monotonic() - t0)
    await listener
    if not latencies:
        raise RuntimeError(f"nothing arrived on {output}")
    lat = sorted(latencies)
    return {"rate": achieved, "count": len(lat), "p50": lat[len(lat) // 2] * 1000,
            "p99": percentile(lat, 0.99) * 1000, "max": lat[-1] * 1000}


async def run(base: Settings, rate: int, seconds: float, workers: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        async with raw_deployment(base, Path(tmp)) as raw_side:
            raw = await _measure(base.bootstrap, raw_side.source, raw_side.outputs[0], rate, seconds)
        async with deployment(base, Path(tmp), workers) as side:
            pipeline = await _measure(base.bootstrap, side.source, side.outputs[0], rate, seconds)
    print(f"{'':30}{'publications/s':>16}{'measured':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, r in (("best pass-through (x10)", raw), (f"govbus, {workers} worker(s) (x10)", pipeline)):
        print(f"{label:30}{r['rate']:16,.0f}{r['count']:10,}{r['p50']:10.1f}{r['p99']:10.1f}{r['max']:10.1f}")
    ratio = pipeline["p99"] / raw["p99"]
    print(f"{'p99 govbus / pass-through':30}{ratio:16.2f}")
    return {"raw": raw, "pipeline": pipeline, "p99_ratio": ratio}
