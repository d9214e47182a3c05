"""Benchmark of the delivery pipeline against the best pass-through a Python aiokafka process can do, on the same
broker, in the same run.

The pipeline: a govbus worker decodes each publication, checks it against the catalog (one
source, resident identity number, catalogued items), consults the per-subject memory for
duplicate collection, records it as accepted, and delivers it to 10 departments, each under
its own directed authorization with its own projection of the items.

The baseline (ops/bench/passthrough.py, a process of its own): reads the same bytes in batches and writes
them unchanged to 10 topics as record batches per partition, acks=all, batches in flight, offsets committed
once acknowledged: the pipeline's guarantee and output path with no rules.

    govbus bench pipeline [--deliveries N] [--rounds 3] [--json]

Both are fed N pre-encoded publications sent as record batches per partition (Publisher: a publisher
that costs little CPU, so that it sets the pace of neither side), after a warm-up of 100, alternately
`rounds` times each, each round new values for the same N subjects (every publication an update); each run
starts once the machine is quiet again (settle). The rate is the publications after the warm-up divided by the
time from their first produce to the last of their outputs, and the CPU seconds of the processing process (the
worker, the pass-through) per 1,000 publications over the same interval. Prints best and median of both and the
ratios.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.codec import default_codec
from streams.outputs import Outputs
from streams.rules.identifiers import resident_id_check_char
from topics.admin import apply_topics, writable
from topics.departments import load as load_departments
from topics.registry import CATALOG, DELIVERIES, FEED_PARTITIONS, GRANTS, feed_name, name_of, publish_name
from topics.settings import REPO_ROOT, Settings, kafka_options
from topics.views import partitions_of, read_to_end

FANOUT = ["NJ-YB", "NJ-RS", "NJ-WJ", "NJ-JY", "NJ-ZJ", "NJ-CZ", "NJ-SW", "NJ-STHJ", "NJ-JT", "NJ-MZ"]
PROVIDER = "WY-MZ"
ITEM_SETS = [["姓名"], ["保障类别"], ["姓名", "保障类别"], ["月救助金额"], ["姓名", "月救助金额"]]


def subjects(n: int) -> list[str]:
    out = []
    for i in range(n):
        body = f"511024{1950 + i % 50}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        out.append(body + resident_id_check_char(body))
    return out


def publications(n: int, edition: int = 0) -> list[tuple[bytes, bytes]]:
    """N publications about N subjects; another `edition` gives the same subjects new values, so that each
    publication changes what the memory holds, as an update does (a replay of the same values would not)."""
    codec = default_codec()
    now = datetime.now(UTC)
    out = []
    for i, sid in enumerate(subjects(n)):
        rec = {"event_id": f"bench-{i}-{uuid.uuid4().hex[:8]}", "occurred_at": now, "publisher": "WY-MZ",
               "resource_code": "WY-MZ-DB-001", "subject_id": sid, "system_code": "WY-MZ-JZ",
               "items": {"姓名": f"居民{i}", "保障类别": "城市低保", "月救助金额": 650.0 + edition}}
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


class Publisher:
    """Sends (key, value) pairs, each to its key's partition in order, as record batches of up to 256 KiB, acks=all:
    what a department's system exporting in bulk sends, for a few microseconds of this process's CPU a record
    (a send() per record costs some 40: on 2 cores shared with the broker and the side measured, that publisher
    would set the pace of a side that needs the CPU, and not of one that does not). Connected before the clock
    starts: a new client's SCRAM handshake is not the side's time."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all",
                                         max_batch_size=256 * 1024)
        self.partitions = 0

    async def start(self) -> None:
        await self.producer.start()
        self.partitions = len(await self.producer.partitions_for(self.topic))

    async def publish(self, messages: list[tuple[bytes, bytes]]) -> None:
        out = Outputs(self.producer, {self.topic: self.partitions})
        for key, value in messages:
            out.add(self.topic, key, value)
        await (await out.submit())

    async def stop(self) -> None:
        await self.producer.stop()


class EndOffsets:
    """Records on some topics (the sum of their end offsets), asked on one client kept open: a poll costs one
    ListOffsets, not a new connection and its SCRAM handshake (hundreds of milliseconds on a busy 2-core machine:
    too coarse a clock, and a load on the broker beside the side measured)."""

    def __init__(self, bootstrap: str, topics: list[str]):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_options(), group_id=None)
        self.topics = topics
        self.tps: list = []

    async def start(self) -> None:
        await self.consumer.start()
        self.tps = [tp for t in self.topics for tp in await partitions_of(self.consumer, t)]

    async def count(self) -> int:
        return sum((await self.consumer.end_offsets(self.tps)).values())

    async def reach(self, want: int, timeout: float) -> float:
        """Wait until the topics hold `want` records; when they did (monotonic seconds), to within 10 ms."""
        deadline = time.monotonic() + timeout
        while True:
            if (n := await self.count()) >= want:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {n} of {want} outputs after {timeout:.0f}s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.consumer.stop()


async def records_on(bootstrap: str, topics: list[str]) -> int:
    """Records on these topics (the sum of their end offsets), asked once: progress without reading them."""
    counter = EndOffsets(bootstrap, topics)
    await counter.start()
    try:
        return await counter.count()
    finally:
        await counter.stop()


@dataclass
class Side:
    """One side of a comparison, running: where its publications go, where its outputs appear, and the
    processes that do the work between (whose CPU time is counted)."""

    name: str
    settings: Settings
    source: str
    outputs: list[str]
    pids: list[int]


def cpu_clock(pid: int) -> int:
    """The id of a process's CPU-time clock, all its threads, as clock_getcpuclockid(3) gives it on Linux
    (CPUCLOCK_SCHED of the whole process): read with clock_gettime, it counts in nanoseconds."""
    return (~pid << 3) | 2


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes so far, in seconds, to the nanosecond. /proc/PID/stat counts in
    clock ticks of 10 ms, more than the pass-through spends on a few hundred publications."""
    return sum(time.clock_gettime_ns(cpu_clock(pid)) for pid in pids) / 1e9


def _cpu_ticks() -> list[int]:
    """The machine's CPU time so far, by kind (/proc/stat's first line, in clock ticks)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def _busy_cores() -> tuple[int, int]:
    """The machine's CPU time so far (/proc/stat, in clock ticks): busy, and busy plus idle."""
    ticks = _cpu_ticks()
    idle = ticks[3] + ticks[4]  # idle, iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    return total - idle, total


def stolen(before: list[int], after: list[int]) -> float:
    """The share of the machine's CPU time between two readings of _cpu_ticks that its host gave to others (steal):
    on a virtual machine, one reason the same work can cost more CPU seconds in one run than in another."""
    total = sum(after[:8]) - sum(before[:8])
    return (after[7] - before[7]) / total if total > 0 else 0.0


async def settle(quiet: float = 0.15, longest: float = 10.0) -> float:
    """Wait until the machine is quiet (under `quiet` of its cores busy over half a second), at most `longest`
    seconds; the seconds waited. A run right after another otherwise pays for its aftermath: the broker
    writing out what the last run wrote makes the next run 30% slower on a 2-core machine, whichever side
    it is."""
    started = time.monotonic()
    while time.monotonic() - started < longest:
        b0, t0 = _busy_cores()
        await asyncio.sleep(0.5)
        b1, t1 = _busy_cores()
        if t1 > t0 and (b1 - b0) / (t1 - t0) < quiet:
            break
    return time.monotonic() - started


async def timed(side: Side, records: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """Publications per second and CPU seconds per 1,000 publications of the side's processes: on a quiet
    machine (settle), a warm-up of 100 first (the consumer has its partitions and its connections), then the
    rest timed from the first produce to the last of their outputs."""
    bootstrap, outputs = side.settings.bootstrap, side.outputs
    publisher, counter = Publisher(bootstrap, side.source), EndOffsets(bootstrap, outputs)
    await publisher.start()
    await counter.start()
    try:
        await settle()
        warm, timed = records[:100], records[100:]
        already = await counter.count()
        await publisher.publish(warm)
        await counter.reach(already + len(warm) * len(outputs), timeout=120.0)
        cpu0, t0, ticks0 = cpu_seconds(side.pids), time.monotonic(), _cpu_ticks()
        await publisher.publish(timed)
        t1 = await counter.reach(already + len(records) * len(outputs), timeout=max(120.0, len(timed) / 50))
        cpu = cpu_seconds(side.pids) - cpu0
    finally:
        await publisher.stop()
        await counter.stop()
    return {"rate": len(timed) / (t1 - t0), "cpu_per_1000": cpu / len(timed) * 1000,
            "steal": stolen(ticks0, _cpu_ticks())}


def bench_grant(i: int, dept: str, resource: str = "WY-MZ-DB-001") -> dict:
    return {"grant_id": f"grant:bench-{resource}-{i}", "grantee": dept, "provider": PROVIDER,
            "resource_code": resource, "items": ITEM_SETS[i % len(ITEM_SETS)], "subjects": [],
            "purpose": "benchmark", "valid_from": (date.today() - timedelta(days=1)).isoformat(),
            "valid_until": (date.today() + timedelta(days=1)).isoformat(), "revoked": False,
            "revoked_reason": None, "granted_by": PROVIDER, "request_id": f"bench-{resource}-{i}",
            "granted_at": datetime.now(UTC)}


async def _seed(s: Settings, feeds: list[str] = FANOUT, entries: list[dict] = (), grants: list[dict] = ()) -> None:
    """The catalog entry and a directed authorization with its own projection for each of `feeds`, and
    whatever other catalog entries and grants a scale run adds beside them."""
    from ops.seeds import approved_entry

    codec = default_codec()
    p = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(), acks="all", linger_ms=20)
    await p.start()
    try:
        for entry in [approved_entry("wy-subsidy.yaml"), *entries]:
            await p.send(name_of(CATALOG, s.topic_prefix), key=entry["resource_code"].encode(),
                         value=codec.encode("govbus.catalog.CatalogEntry", entry))
        for grant in [*(bench_grant(i, d) for i, d in enumerate(feeds)), *grants]:
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
async def deployment(base: Settings, workdir: Path, workers: int = 1, feeds: list[str] = FANOUT,
                     entries: list[dict] = (), grants: list[dict] = ()):
    """A fresh deployment (its own topic prefix) with the bench catalog entry and a grant for each of `feeds`
    (and any other `entries` and `grants`), and `workers` worker processes that have shared out the deliveries
    partitions."""
    from ops.workers import WorkerProcess

    s = replace(base, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    await apply_topics(s)
    await _seed(s, feeds, entries, grants)
    env = {"GOVBUS_KAFKA_BOOTSTRAP": s.bootstrap}
    if base.local_kafka:  # the local stack's admin: the children are told the broker, so not its state
        env["GOVBUS_KAFKA_CONFIG"] = str(base.state_dir / "admin.properties")
    procs = [WorkerProcess(s.topic_prefix, workdir, name=f"{s.topic_prefix}worker{i}", env=env)
             for i in range(workers)]
    try:
        for w in procs:
            w.start()
        await _balanced(procs, DELIVERIES.partitions)
        yield Side(f"govbus, {workers} worker(s)", s, publish_name(PROVIDER, s.topic_prefix),
                   [feed_name(d, s.topic_prefix) for d in feeds], [w.proc.pid for w in procs])
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


async def _raw_ready(ready: Path, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the pass-through did not start:\n{log.read_text(errors='replace')[-3000:]}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def raw_deployment(base: Settings, workdir: Path):
    """The baseline: as many input topics and partitions as the pipeline reads (every department's inbound topic
    and the operators' one), 10 output topics, and the best pass-through between them running in a process of
    its own (ops/bench/passthrough.py); the publications go to one of the inputs, as the provider's do."""
    prefix = f"raw-{uuid.uuid4().hex[:8]}."
    sources = [f"{prefix}in.{i}" for i in range(1 + len(load_departments()))]
    source = sources[0]
    outputs = [f"{prefix}out.{d}" for d in FANOUT]
    admin = AIOKafkaAdminClient(bootstrap_servers=base.bootstrap, **kafka_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, DELIVERIES.partitions, 1) for t in sources]
                                  + [NewTopic(t, FEED_PARTITIONS, 1) for t in outputs])
        # a busy broker may take a while to take on 300 new partitions: the pass-through starts once it has
        await writable(admin, [*sources, *outputs], timeout=120)
    finally:
        await admin.close()
    ready, log = workdir / f"{prefix}ready", workdir / f"{prefix}log"
    env = {**os.environ, "GOVBUS_KAFKA_BOOTSTRAP": base.bootstrap}
    if base.local_kafka:
        env["GOVBUS_KAFKA_CONFIG"] = str(base.state_dir / "admin.properties")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ops.bench.passthrough", ",".join(sources), f"{prefix}g",
                                 str(ready), *outputs], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        await _raw_ready(ready, proc, log)
        yield Side("best pass-through", base, source, outputs, [proc.pid])
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await drop_topics(base.bootstrap, prefix)


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    rates = [r["rate"] for r in runs]
    return {"best": max(rates), "median": statistics.median(rates),
            "cpu_per_1000": statistics.median(r["cpu_per_1000"] for r in runs), "runs": runs}


async def run(base: Settings, n: int, rounds: int = 3) -> dict:
    """The pipeline and its baseline alternately, `rounds` times each, on the same publisher and timer."""
    with tempfile.TemporaryDirectory() as tmp:
        async with raw_deployment(base, Path(tmp)) as raw_side, deployment(base, Path(tmp)) as pipe_side:
            runs: dict[str, list] = {"raw": [], "pipeline": []}
            for edition in range(rounds):  # each round updates every subject: new values, as a department's updates
                runs["raw"].append(await timed(raw_side, publications(n, edition)))
                runs["pipeline"].append(await timed(pipe_side, publications(n, edition)))
    raw, pipeline = _summary(runs["raw"]), _summary(runs["pipeline"])
    out = {"raw": raw["best"], "pipeline": pipeline["best"], "ratio": pipeline["best"] / raw["best"],
           "ratio_median": pipeline["median"] / raw["median"],
           "cpu_ratio": pipeline["cpu_per_1000"] / raw["cpu_per_1000"], "deliveries": n, "rounds": rounds,
           "details": {"raw": raw, "pipeline": pipeline}}
    print(f"{n:,} publications to 10 feeds, {rounds} alternate runs each")
    print(f"{'':30}{'best/s':>10}{'median/s':>10}{'CPU s/1000':>12}")
    for label, r in (("best pass-through (x10)", raw), ("govbus pipeline (x10)", pipeline)):
        print(f"{label:30}{r['best']:10,.0f}{r['median']:10,.0f}{r['cpu_per_1000']:12.3f}")
    print(f"{'ratio pipeline / pass-through':30}{out['ratio']:10.2f}{out['ratio_median']:10.2f}"
          f"{out['cpu_ratio']:12.2f}")
    return out


async def feed_event_ids(bootstrap: str, topic: str) -> tuple[int, int]:
    """Records on a feed and distinct event ids among them."""
    codec = default_codec()
    total, ids = 0, set()
    async for recs in read_to_end(bootstrap, topic, timeout=60):
        for r in recs:
            total += 1
            ids.add(codec.decode(r.value).record["event_id"])
    return total, len(ids)


async def run_scaling(base: Settings, n: int, counts: tuple[int, ...] = (1, 2, 4), rounds: int = 1) -> dict:
    """The cost of scaling out: CPU seconds per 1,000 publications summed over 1, 2 and 4 workers sharing the
    partitions, and whether any publication was processed twice (rates on a shared 2-core machine cannot show
    scale-out; the CPU a publication costs can). Each count runs `rounds` times on one deployment, each round new
    values for the same subjects; the median of each is reported, the rounds beside it."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            async with deployment(base, Path(tmp), workers=k) as side:
                runs = [await timed(side, publications(n, edition)) for edition in range(rounds)]
                total, distinct = await feed_event_ids(side.settings.bootstrap, side.outputs[0])
            out[k] = {"rate": statistics.median(r["rate"] for r in runs),
                      "cpu_per_1000": statistics.median(r["cpu_per_1000"] for r in runs),
                      "rounds": runs, "feed_records": total, "twice": total - distinct}
    one = out[counts[0]]["cpu_per_1000"]
    print(f"{n:,} publications to 10 feeds, {rounds} round(s) per count, medians")
    print(f"{'workers':8}{'publications/s':>16}{'CPU s/1000':>12}{'x one worker':>14}{'processed twice':>17}"
          f"  CPU s/1000 (steal) by round")
    for k, r in out.items():
        r["cpu_vs_one"] = r["cpu_per_1000"] / one
        by_round = " ".join(f"{x['cpu_per_1000']:.3f} ({x['steal']:.0%})" for x in r["rounds"])
        print(f"{k:<8}{r['rate']:16,.0f}{r['cpu_per_1000']:12.3f}{r['cpu_vs_one']:14.2f}{r['twice']:17,}  {by_round}")
    return {"deliveries": n, "workers": out}
