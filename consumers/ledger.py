"""The ledger sink: every accepted publication, every delivery to a feed and every reject,
written to PostgreSQL in batches, idempotent on event id (R-8.1).

A batch is `add()`-ed record by record and `flush()`-ed in one transaction; offsets are
committed only after the flush. When the database is unreachable the sink keeps its
batch and its place, backs off and retries; nothing is skipped and nothing doubled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError

from consumers.errors import SinkUnavailable
from ops import metrics
from schemas.codec import default_codec
from schemas.errors import CodecError

log = logging.getLogger("govbus.ledger")

INSERTS = {
    "govbus.exchange.DataDelivery": (
        "ledger_deliveries",
        "INSERT INTO ledger_deliveries (event_id, publisher, resource_code, subject_id, system_code,"
        " items, occurred_at, accepted_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
    ),
    "govbus.exchange.FeedDelivery": (
        "ledger_feed_deliveries",
        "INSERT INTO ledger_feed_deliveries (event_id, subscriber, publisher, resource_code, subject_id,"
        " grant_id, purpose, digest, delivered_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
        " ON CONFLICT DO NOTHING",
    ),
    "govbus.ops.Reject": (
        "ledger_rejects",
        "INSERT INTO ledger_rejects (reject_id, source_topic, source_partition, source_offset, code,"
        " reason, publisher, original_event_id, rule_ids, raw, rejected_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING",
    ),
}


def _row(name: str, r: dict, timestamp_ms: int):
    from datetime import UTC, datetime

    if name == "govbus.exchange.DataDelivery":
        accepted = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        return (r["event_id"], r["publisher"], r["resource_code"], r["subject_id"], r.get("system_code"),
                json.dumps(r["items"], ensure_ascii=False), r["occurred_at"], accepted)
    if name == "govbus.exchange.FeedDelivery":
        return (r["event_id"], r["subscriber"], r["publisher"], r["resource_code"], r["subject_id"],
                r["grant_id"], r["purpose"], r["digest"], r["delivered_at"])
    return (r["reject_id"], r["source_topic"], r["source_partition"], r["source_offset"], r["code"],
            r["reason"], r["publisher"], r["original_event_id"], r["rule_ids"], r["raw"], r["rejected_at"])


def ledger_pattern(prefix: str) -> str:
    return rf"^{re.escape(prefix)}govbus\.(deliveries\.accepted|rejects|feed\..+)$"


class LedgerSink:
    def __init__(self, dsn: str, *, max_backoff: float = 5.0):
        self.dsn = dsn
        self.max_backoff = max_backoff
        self.codec = default_codec()
        self.batch: dict[str, list[tuple]] = defaultdict(list)
        self._pool: asyncpg.Pool | None = None

    def add(self, value: bytes | None, timestamp_ms: int) -> None:
        try:
            d = self.codec.decode(value or b"")
        except CodecError as exc:
            log.error("ledger input unreadable, skipped: %s", exc.reason)
            return
        if d.name in INSERTS:
            self.batch[d.name].append(_row(d.name, d.record, timestamp_ms))

    async def _write(self) -> None:
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
            async with self._pool.acquire() as conn, conn.transaction():
                for name, rows in self.batch.items():
                    if rows:
                        await conn.executemany(INSERTS[name][1], rows)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncio.TimeoutError) as exc:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
            raise SinkUnavailable(f"PostgreSQL unavailable: {exc}", retry_after=0.5) from exc

    async def flush(self) -> None:
        """Write the batch; on a retriable failure wait and retry until it is written."""
        delay = None
        try:
            while True:
                try:
                    await self._write()
                    break
                except SinkUnavailable as exc:
                    delay = min(self.max_backoff, delay * 2 if delay else exc.retry_after)
                    metrics.LEDGER_RETRIES.inc()
                    log.warning("%s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
            for name, rows in self.batch.items():
                metrics.LEDGER_ROWS.labels(INSERTS[name][0]).inc(len(rows))
        finally:
            self.batch.clear()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def run_ledger(bootstrap: str, dsn: str, prefix: str = "", *, group_id: str | None = None,
                     stop: asyncio.Event | None = None, batch_size: int = 2000) -> None:
    """Consume the accepted, feed and rejects topics into the ledger until `stop` is set."""
    stop = stop or asyncio.Event()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id or f"{prefix}govbus-ledger",
        enable_auto_commit=False, auto_offset_reset="earliest", metadata_max_age_ms=10_000,
        max_poll_interval_ms=30 * 60 * 1000,
    )
    consumer.subscribe(pattern=ledger_pattern(prefix))
    await consumer.start()
    sink = LedgerSink(dsn)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=batch_size)
            if not batches:
                continue
            for recs in batches.values():
                for r in recs:
                    sink.add(r.value, r.timestamp)
            await sink.flush()
            try:
                await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
            except (CommitFailedError, IllegalStateError) as exc:
                # a rebalance took the partitions away; their new owner rewrites the batch,
                # which the ledger's unique keys make harmless
                log.info("commit skipped after rebalance: %s", exc)
    finally:
        await consumer.stop()
        await sink.close()
