"""How cost grows to a whole city: rate, CPU per publication and the worker's memory as the feeds per publication,
the grants in force, the catalog entries and the subjects in the duplicate-collection memory grow.

    govbus bench scale [--deliveries N] [--subjects 100000,1000000,3500000] [--json]

Each point is a fresh deployment with one worker, fed as in `govbus bench pipeline`. For the subjects, the
memory's compacted topic is filled with that many subjects (three remembered items each, as the bench resource
has), and a worker process holding every partition reads it as on a take-over after a rebalance: the time and
the memory it then holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from ops.bench.pipeline import PROVIDER, bench_grant, deployment, drop_topics, publications, timed
from streams.outputs import key_hash
from streams.rules.exchange import item_key, value_digest
from streams.rules.identifiers import resident_id_check_char
from topics import registry
from topics.admin import apply_topics
from topics.departments import load
from topics.settings import REPO_ROOT, Settings, kafka_options

GRANTS = (10, 1_000, 10_000)
ENTRIES = (100, 10_000)
SUBJECTS = (100_000, 1_000_000, 3_500_000)


def distinct_subjects(n: int):
    """n different resident identity numbers (a thousand per birth date from 1950 on)."""
    first = date(1950, 1, 1)
    for i in range(n):
        body = f"511024{first + timedelta(days=i // 1000):%Y%m%d}{i % 1000:03d}"
        yield body + resident_id_check_char(body)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def other_entries(n: int) -> list[dict]:
    """Catalog entries of other resources of the provider, each with items of its own."""
    from ops.seeds import approved_entry

    base = approved_entry("wy-subsidy.yaml")
    out = []
    for i in range(n):
        code = f"WY-MZ-DB-{100 + i:05d}"
        items = [it if it.get("subject_id") else {**it, "name": f"{it['name']}{i}"}
                 for it in base["entry"]["data_items"]]
        out.append({**base, "resource_code": code, "entry": {**base["entry"], "resource_code": code,
                                                             "data_items": items}})
    return out


def other_grants(n: int, departments: list[str]) -> list[dict]:
    """Grants in force on other resources (100 of them), to the departments in turn."""
    return [bench_grant(i, departments[i % len(departments)], f"WY-MZ-DB-{100 + i % 100:05d}") for i in range(n)]


async def _point(base: Settings, workdir: Path, n: int, **kwargs) -> dict:
    async with deployment(base, workdir, **kwargs) as side:
        r = await timed(side, publications(n))
        r["worker_rss_mib"] = rss_mib(side.pids[0])
    return r


TAKE_OVER = """
import asyncio, gc, json, os, sys, time
from streams.deliveries import DeliveryStream
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
async def main():
    gc.collect(); before = rss()
    stream = DeliveryStream(os.environ["GOVBUS_KAFKA_BOOTSTRAP"])
    t0 = time.monotonic()
    await stream.restore(list(range(int(sys.argv[1]))))
    took = time.monotonic() - t0
    gc.collect()
    print(json.dumps({"seconds": took, "memory_mib": rss() - before, "rss_mib": rss(),
                      "subjects": sum(len(m) for m in stream.memory.values())}))
asyncio.run(main())
"""


async def fill_memory(s: Settings, count: int) -> None:
    """`count` subjects on the memory's compacted topic, each in the partition its publications go to."""
    from ops.seeds import approved_entry

    entry = approved_entry("wy-subsidy.yaml")
    keys = [item_key(i) for i in entry["entry"]["data_items"] if not i.get("subject_id")]
    topic = registry.name_of(registry.SUBJECT_SOURCES, s.topic_prefix)
    parts = registry.SUBJECT_SOURCES.partitions
    p = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(s), acks="all", linger_ms=50,
                         max_batch_size=1024 * 1024)
    await p.start()
    try:
        pending = []
        for i, sid in enumerate(distinct_subjects(count)):
            memory = {k: [PROVIDER, "WY-MZ-DB-001", value_digest(f"{k}{i}")] for k in keys}
            key = sid.encode()
            pending.append(await p.send(topic, key=key, partition=key_hash(key) % parts,
                                        value=json.dumps(memory, ensure_ascii=False, separators=(",", ":")).encode()))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await p.stop()


async def take_over(base: Settings, count: int) -> dict:
    s = replace(base, topic_prefix=f"scale-{uuid.uuid4().hex[:8]}.")
    await apply_topics(s)
    try:
        t0 = time.monotonic()
        await fill_memory(s, count)
        filled = time.monotonic() - t0
        env = {"GOVBUS_KAFKA_BOOTSTRAP": s.bootstrap, "GOVBUS_TOPIC_PREFIX": s.topic_prefix}
        if base.local_kafka:
            env["GOVBUS_KAFKA_CONFIG"] = str(base.state_dir / "admin.properties")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TAKE_OVER, str(registry.SUBJECT_SOURCES.partitions), cwd=REPO_ROOT,
            env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"take-over failed: {err.decode(errors='replace')[-2000:]}")
        r = json.loads(out.decode().strip().splitlines()[-1])
        r["filled_in_seconds"] = filled
        return r
    finally:
        await drop_topics(s.bootstrap, s.topic_prefix)


async def run(base: Settings, n: int, subject_counts: tuple[int, ...] = SUBJECTS) -> dict:
    others = [c for c in load() if c != PROVIDER]
    out: dict = {"deliveries": n, "feeds": {}, "grants": {}, "entries": {}, "subjects": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for k in (1, 10, len(others)):
            out["feeds"][k] = await _point(base, work, n, feeds=others[:k])
        for g in GRANTS:
            out["grants"][g] = await _point(base, work, n, grants=other_grants(g - 10, others))
        for e in ENTRIES:
            out["entries"][e] = await _point(base, work, n, entries=other_entries(e - 1))
    for c in subject_counts:
        out["subjects"][c] = await take_over(base, c)

    print(f"{n:,} publications per point, one worker")
    print(f"{'':28}{'publications/s':>16}{'CPU s/1000':>12}{'worker MiB':>12}")
    for dim, label in (("feeds", "feeds per publication"), ("grants", "grants in force"),
                       ("entries", "catalog entries")):
        for k, r in out[dim].items():
            print(f"{f'{label} {k:,}':28}{r['rate']:16,.0f}{r['cpu_per_1000']:12.3f}{r['worker_rss_mib']:12.0f}")
    print(f"{'subjects in the memory':28}{'take-over s':>16}{'held MiB':>12}{'worker MiB':>12}")
    for c, r in out["subjects"].items():
        print(f"{f'  {c:,}':28}{r['seconds']:16.1f}{r['memory_mib']:12.0f}{r['rss_mib']:12.0f}")
    return out
