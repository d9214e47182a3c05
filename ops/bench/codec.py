"""Benchmark of the govbus codec against bare fastavro schemaless read/write on the same records.

    govbus bench codec [--records N]

The codec adds the single-object header and (on reading) the fingerprint look-up and schema
resolution; on writing it uses the compiled writer of schemas/fastpath.py.
"""

from __future__ import annotations

import gc
import io
import time
from datetime import UTC, datetime

from fastavro import schemaless_reader, schemaless_writer

from schemas.codec import HEADER, default_codec
from schemas.provenance import provenance_digest


def _records(n: int) -> dict[str, list[dict]]:
    now = datetime.now(UTC)
    deliveries = [{"event_id": f"e{i}", "occurred_at": now, "publisher": "NJ-GA", "resource_code": "GA-RK-001",
                   "subject_id": f"5110021980010{i:05d}", "system_code": "GA-HZ",
                   "items": {"姓名": f"居民{i}", "性别": "女", "出生日期": "1980-01-01", "户籍地址": "内江市市中区"}}
                  for i in range(n)]
    feeds = [{**d, "subscriber": "NJ-MZ", "delivered_at": now, "grant_id": "subscription:GA-RK-001:NJ-MZ",
              "purpose": None, "flags": [],
              "digest": provenance_digest(d["publisher"], d["resource_code"], d["event_id"], d["subject_id"],
                                          d["items"])} for d in deliveries]
    return {"govbus.exchange.DataDelivery": deliveries, "govbus.exchange.FeedDelivery": feeds}


def _best_of_pair(bare, ours, repeat: int = 9) -> tuple[float, float]:
    """Best time of each, the two run in turns (so both meet the same moments of a busy machine),
    with the collector paused while timing, as `timeit` does."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, fn in enumerate((bare, ours)):
            gc.disable()
            try:
                t = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t)
            finally:
                gc.enable()
    return best[0], best[1]


def run(n: int = 20_000) -> list[dict]:
    codec = default_codec()
    rows = []
    for name, records in _records(n).items():
        schema = codec.latest[name].schema

        def bare_write(records=records, schema=schema):
            for r in records:
                buf = io.BytesIO()
                schemaless_writer(buf, schema, r)
                buf.getvalue()

        encoded = [codec.encode(name, r) for r in records]

        def bare_read(encoded=encoded, schema=schema):
            for e in encoded:
                schemaless_reader(io.BytesIO(e[HEADER:]), schema, None)

        def ours_write(records=records, name=name):
            for r in records:  # results dropped on both sides: keeping them would time the collector
                codec.encode(name, r)

        def ours_read(encoded=encoded, name=name):
            for e in encoded:
                codec.decode(e, name)

        for op, pair in (("write", (bare_write, ours_write)), ("read", (bare_read, ours_read))):
            bare_s, ours_s = _best_of_pair(*pair)
            rows.append({"schema": name.rsplit(".", 1)[1], "op": op, "bare_us": bare_s / n * 1e6,
                         "govbus_us": ours_s / n * 1e6})
    print(f"{'schema':14}{'op':7}{'fastavro µs':>13}{'govbus µs':>11}{'govbus/fastavro':>17}")
    for r in rows:
        print(f"{r['schema']:14}{r['op']:7}{r['bare_us']:13.1f}{r['govbus_us']:11.1f}"
              f"{r['govbus_us'] / r['bare_us']:17.2f}")
    return rows
