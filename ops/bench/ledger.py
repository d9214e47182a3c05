"""Benchmark of the ledger's hash chain: the sink's write path with the chain against the plain insert it replaced,
and `govbus audit verify` over a million rows.

    govbus bench ledger [--rows 1000000] [--batches 50]

Runs in a database of its own on the configured PostgreSQL, dropped at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from consumers import chain
from consumers.audit import verify
from consumers.chain import CHAINED
from consumers.ledger import WRITERS
from ops.db import migrate
from schemas.codec import default_codec

DELIVERY = "govbus.exchange.DataDelivery"
BATCH = 2000  # the ledger's batch size

# ledger_deliveries as it was before 0006, for the baseline
PLAIN = """CREATE TABLE plain_deliveries (
    event_id text PRIMARY KEY, publisher text NOT NULL, resource_code text NOT NULL, subject_id text NOT NULL,
    system_code text, items jsonb NOT NULL, occurred_at timestamptz NOT NULL, accepted_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON plain_deliveries (resource_code, occurred_at);
CREATE INDEX ON plain_deliveries (subject_id);
CREATE INDEX ON plain_deliveries (recorded_at);"""


def _delivery(i: int, now: datetime) -> dict:
    return {"event_id": f"b-{uuid.uuid4().hex}", "occurred_at": now, "publisher": "NJ-GA",
            "resource_code": "GA-RK-001", "subject_id": f"5110021980{i:08d}",
            "system_code": "GA-HZ", "items": {"姓名": f"居民{i}", "性别": "女", "出生日期": "1980-01-01",
                                              "户籍地址": "内江市市中区", "月收入": 3200.5}}


async def _plain(conn, batch) -> None:
    await conn.executemany(
        "INSERT INTO plain_deliveries (event_id, publisher, resource_code, subject_id, system_code,"
        " items, occurred_at, accepted_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
        [(r["event_id"], r["publisher"], r["resource_code"], r["subject_id"], r.get("system_code"),
          json.dumps(r["items"], ensure_ascii=False), r["occurred_at"], datetime.fromtimestamp(ts / 1000, UTC))
         for r, ts in batch])


async def _write_rate(conn, writer, encoded: list[list[bytes]]) -> float:
    """Rows/s through decode and one transaction per batch, as the sink does."""
    codec = default_codec()
    ts = int(time.time() * 1000)
    start = time.perf_counter()
    for values in encoded:
        batch = [(codec.decode(v).record, ts) for v in values]
        async with conn.transaction():
            await writer(conn, batch)
    return sum(map(len, encoded)) / (time.perf_counter() - start)


async def _fill(conn, rows: int) -> float:
    """`rows` chained deliveries, written with COPY (the hashes computed as the sink computes them)."""
    table = CHAINED["ledger_deliveries"]
    seq, prev = 0, chain.GENESIS
    now = datetime.now(UTC)
    start = time.perf_counter()
    while seq < rows:
        chunk = []
        for i in range(seq, min(rows, seq + 50_000)):
            d = _delivery(i, now + timedelta(microseconds=i))
            values = (d["event_id"], d["publisher"], d["resource_code"], d["subject_id"], d["system_code"],
                      d["items"], d["occurred_at"], d["occurred_at"])
            prev = chain.link(prev, table.name, i + 1, values)
            chunk.append((*values[:5], json.dumps(d["items"], ensure_ascii=False), *values[6:], i + 1, prev))
        await conn.copy_records_to_table(table.name, records=chunk,
                                         columns=[*table.columns, "chain_seq", "row_hash"])
        seq += len(chunk)
    return time.perf_counter() - start


async def run(dsn: str, rows: int = 1_000_000, batches: int = 50) -> dict[str, float]:
    name = f"govbus_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    bench_dsn = urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    try:
        await migrate(bench_dsn)
        conn = await asyncpg.connect(bench_dsn)
        try:
            await conn.execute(PLAIN)
            codec = default_codec()
            now = datetime.now(UTC)
            chained_writer = WRITERS[DELIVERY][1]
            rates: dict[str, list[float]] = {"plain": [], "chained": []}
            for _ in range(3):  # in turns, so both meet the same moments of a busy machine
                for label, writer in (("plain", _plain), ("chained", chained_writer)):
                    encoded = [[codec.encode(DELIVERY, _delivery(b * BATCH + i, now)) for i in range(BATCH)]
                               for b in range(batches // 3 or 1)]
                    rates[label].append(await _write_rate(conn, writer, encoded))
            plain, chained = max(rates["plain"]), max(rates["chained"])
            await conn.execute("TRUNCATE plain_deliveries")
            # start the verification table afresh: the write benchmark's rows are left in another table
            await conn.execute("ALTER TABLE ledger_deliveries RENAME TO written_deliveries")
            await conn.execute("CREATE TABLE ledger_deliveries (LIKE written_deliveries INCLUDING ALL)")
            fill = await _fill(conn, rows)
            await conn.execute("ANALYZE ledger_deliveries")
        finally:
            await conn.close()
        start = time.perf_counter()
        report = await verify(bench_dsn, [])
        took = time.perf_counter() - start
        assert report.intact and report.rows["ledger_deliveries"] == rows, report
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()

    print(f"{'ledger sink write path (batches of 2,000)':44}{'rows/s':>12}")
    print(f"{'  plain insert (before the chain)':44}{plain:12,.0f}")
    print(f"{'  chained append':44}{chained:12,.0f}")
    print(f"{'  ratio chained / plain':44}{chained / plain:12.2f}")
    print(f"{'audit verify':44}{'seconds':>12}")
    print(f"{f'  {rows:,} rows (filled in {fill:.1f} s)':44}{took:12.1f}")
    return {"plain": plain, "chained": chained, "verify_seconds": took, "rows": rows}
