"""Benchmark of the deadline engine: memory per open deadline and the cost of a tick, empty or
with ~100 deadlines due, at 10k / 100k / 1M open deadlines. Prints a table; asserts nothing.

    .venv/bin/python -m ops.bench.deadlines [SIZE ...]
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta

from streams.rules.deadlines import PROCESSES, ZONE, DeadlineEngine
from streams.rules.workcalendar import WorkCalendar
from topics.departments import load

FIRST_DAY = date(2026, 1, 5)  # received dates spread over the following 60 days
SPREAD_DAYS = 60
QUIET = datetime(2026, 1, 5, 12, tzinfo=ZONE)  # before the first reminder of any bench deadline
EMPTY_TICKS = 20_000
DUE_TICKS = 50
DUE_PER_TICK = 100


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak is the best there is
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _build(size: int) -> DeadlineEngine:
    heads = {code: d.head for code, d in load().items()}
    parties = sorted(heads)
    types = sorted(PROCESSES)
    engine = DeadlineEngine(WorkCalendar(), heads)
    days = [FIRST_DAY + timedelta(days=i) for i in range(SPREAD_DAYS)]
    for i in range(size):
        received = days[i % SPREAD_DAYS]
        engine.start(
            f"dl-{i:07d}",
            types[i % len(types)],
            f"CASE-{i:07d}",
            parties[i % len(parties)],
            received,
            QUIET,
        )
        if i % 10_000 == 9_999:
            engine.changed()  # as the service does: flush the changed states now and then
    engine.changed()
    return engine


def _measure(size: int, traced: bool) -> dict[str, float]:
    """Runs in a fresh process, so that RSS and the traced heap belong to this engine alone."""
    gc.collect()
    if traced:
        tracemalloc.start()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    engine = _build(size)
    build_s = time.perf_counter() - t0
    gc.collect()
    result = {
        "size": size,
        "build_s": build_s,
        "rss_mb": _rss_mb() - rss0,
        "open": engine.open_count(),
    }
    if traced:
        result["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        return result

    t0 = time.perf_counter()
    for _ in range(EMPTY_TICKS):
        engine.tick(QUIET)
    result["empty_us"] = (time.perf_counter() - t0) / EMPTY_TICKS * 1e6

    # share requests received 2025-12-22 are due 2026-01-06: at QUIET their reminder is due,
    # their breach not yet
    received = date(2025, 12, 22)
    spent, fired = 0.0, 0
    for trial in range(DUE_TICKS):
        for j in range(DUE_PER_TICK):
            engine.start(
                f"due-{trial}-{j}", "share_request", f"DUE-{trial}-{j}", "NJ-GA", received, QUIET
            )
        engine.changed()
        t0 = time.perf_counter()
        notices = engine.tick(QUIET)
        spent += time.perf_counter() - t0
        fired += len(notices)
    result["due_us"] = spent / DUE_TICKS * 1e6
    result["due_per_tick"] = fired / DUE_TICKS
    return result


def _in_child(size: int, traced: bool) -> dict[str, float]:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_measure, size, traced).result()


def main(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> list[dict[str, float]]:
    rows = []
    print(
        f"{'open':>10} {'RSS MB':>8} {'traced MB':>10} {'B/deadline':>10} {'build s':>8} "
        f"{'µs empty tick':>14} {'µs tick, due':>13} {'due':>5}",
        flush=True,
    )
    for size in sizes:
        row = _in_child(size, traced=False)
        row["traced_mb"] = _in_child(size, traced=True)["traced_mb"]
        rows.append(row)
        print(
            f"{size:>10,} {row['rss_mb']:>8.0f} {row['traced_mb']:>10.0f} "
            f"{row['traced_mb'] * 2**20 / size:>10.0f} {row['build_s']:>8.1f} "
            f"{row['empty_us']:>14.2f} {row['due_us']:>13.1f} {row['due_per_tick']:>5.0f}",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main(tuple(int(a.replace("_", "")) for a in sys.argv[1:]) or (10_000, 100_000, 1_000_000))
