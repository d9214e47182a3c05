"""End-to-end latency at a steady rate: from a department's publication to its arrival on a feed.

    govbus bench latency [--rate 1000] [--seconds 30] [--workers 1] [--rounds 3]

A fresh deployment (catalog entry, ten directed authorizations, `workers` workers) as in
`govbus bench pipeline`. A publisher makes `rate` publications a second, evenly paced, each
stamped with the time it is made (`occurred_at`), and sends what is due every 5 ms; a subscriber
reads one department's feed (every publication reaches all ten) and takes arrival time minus
`occurred_at`. The first 5 seconds are a warm-up and are not counted. The same publisher and
subscriber also run around the best pass-through of `govbus bench pipeline` (its own process;
one of its ten outputs is read): the floor that Kafka, the clients and this machine set. Both are deployed
side by side and measured in turns, `rounds` times each, each round on a quiet machine (`settle`): a p99 of
one 30 s run moves by a third from run to run here. Prints each side's medians of p50 and p99 over its rounds,
the largest delay, and the share of a core its processing process was busy (its CPU time over the round); and the
ratio of the p99s, of the medians and round by round (each govbus round against the floor's round just before it).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ops.bench.pipeline import Side, cpu_seconds, deployment, raw_deployment, settle, subjects
from schemas.codec import default_codec
from streams.outputs import Outputs
from topics.settings import Settings, kafka_options
from topics.views import partitions_of

WARMUP = 5.0
TICK = 0.005  # the publisher sends what is due every 5 ms


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _publish(bootstrap: str, topic: str, rate: int, seconds: float) -> tuple[int, float]:
    """`rate` publications a second for `seconds`, in ticks of TICK: each publication is stamped when
    it is made, and a tick's publications leave as one record batch per partition, as a department's
    system exporting a steady stream would send them. (A send() per record, paced to the millisecond,
    costs this client about 0.4 ms of CPU each: on a small machine shared with the broker and the
    worker, the measuring would slow what it measures.) Returns how many were sent, and when the first was due
    (epoch seconds)."""
    codec = default_codec()
    ids = subjects(min(int(rate * seconds), 50_000))
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all", linger_ms=0)
    await p.start()
    out = Outputs(p, {topic: len(await p.partitions_for(topic))})
    acks = []
    sent = 0
    try:
        start, started_at = time.monotonic(), time.time()
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
    return sent, started_at


async def _listen(bootstrap: str, topic: str, want: int, out: list[tuple[float, float]], timeout: float,
                  reading: asyncio.Event) -> None:
    """Read `topic` from its end as it is now (an earlier round's records are not this round's) until `want`
    records arrived; each one's (made, arrived) goes to `out`. `reading` is set once the positions are taken."""
    codec = default_codec()
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_options(), group_id=None, fetch_max_wait_ms=10)
    await c.start()
    seen = 0
    try:
        tps = await partitions_of(c, topic)
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:
            await c.position(tp)
        reading.set()
        deadline = time.monotonic() + timeout
        while seen < want and time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=100)).values():
                arrived = time.time()
                for r in recs:
                    seen += 1
                    # a feed record or the pass-through's copy of the publication
                    out.append((codec.decode(r.value).record["occurred_at"].timestamp(), arrived))
    finally:
        reading.set()
        await c.stop()


async def _measure(bootstrap: str, side: Side, rate: int, seconds: float) -> dict[str, float]:
    arrivals: list[tuple[float, float]] = []
    total = int(rate * (seconds + WARMUP))
    reading = asyncio.Event()
    listener = asyncio.create_task(_listen(bootstrap, side.outputs[0], total, arrivals, seconds * 3 + 60, reading))
    await reading.wait()
    await asyncio.sleep(1)  # the subscriber is fetching
    t0, cpu0 = time.monotonic(), cpu_seconds(side.pids)
    sent, started_at = await _publish(bootstrap, side.source, rate, seconds + WARMUP)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(side.pids) - cpu0
    await listener
    lat = sorted(arrived - made for made, arrived in arrivals if made >= started_at + WARMUP)
    if not lat:
        raise RuntimeError(f"nothing arrived on {side.outputs[0]}")
    return {"rate": sent / elapsed, "sent": sent, "arrived": len(arrivals), "count": len(lat),
            "p50": lat[len(lat) // 2] * 1000, "p99": percentile(lat, 0.99) * 1000, "max": lat[-1] * 1000,
            "busy": cpu / elapsed}


def _summary(runs: list[dict[str, float]]) -> dict:
    return {"rate": statistics.median(r["rate"] for r in runs), "count": sum(r["count"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs), "p99": statistics.median(r["p99"] for r in runs),
            "max": max(r["max"] for r in runs), "busy": statistics.median(r["busy"] for r in runs), "rounds": runs}


async def run(base: Settings, rate: int, seconds: float, workers: int = 1, rounds: int = 3) -> dict:
    runs: dict[str, list[dict[str, float]]] = {"raw": [], "pipeline": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with raw_deployment(base, Path(tmp)) as raw_side, deployment(base, Path(tmp), workers) as side:
            for _ in range(rounds):
                for key, s in (("raw", raw_side), ("pipeline", side)):
                    await settle()
                    runs[key].append(await _measure(base.bootstrap, s, rate, seconds))
    raw, pipeline = _summary(runs["raw"]), _summary(runs["pipeline"])
    print(f"{rounds} round(s) of {seconds:.0f} s each side, in turns; medians over the rounds, max of all")
    print(f"{'':30}{'publications/s':>16}{'measured':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'busy':>7}"
          f"  p99 ms by round")
    for label, r in (("best pass-through (x10)", raw), (f"govbus, {workers} worker(s) (x10)", pipeline)):
        by_round = " ".join(f"{x['p99']:.1f}" for x in r["rounds"])
        print(f"{label:30}{r['rate']:16,.0f}{r['count']:10,}{r['p50']:10.1f}{r['p99']:10.1f}{r['max']:10.1f}"
              f"{r['busy']:7.0%}  {by_round}")
    ratio = pipeline["p99"] / raw["p99"]
    # each govbus round against the floor's round just before it: the machine's speed drifts within a run
    paired = [p["p99"] / r["p99"] for r, p in zip(runs["raw"], runs["pipeline"], strict=True)]
    paired_median = statistics.median(paired)
    print(f"{'p99 govbus / pass-through':30}{ratio:16.2f}  round by round: "
          f"{' '.join(f'{x:.2f}' for x in paired)} (median {paired_median:.2f})")
    return {"raw": raw, "pipeline": pipeline, "p99_ratio": ratio, "p99_ratio_by_round": paired,
            "p99_ratio_paired": paired_median}
