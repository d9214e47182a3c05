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
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError

from consumers.errors import SinkUnavailable
from ops import metrics
from schemas.codec import default_codec
from schemas.errors import CodecError

log = logging.getLogger("govbus.ledger")

def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def _deliveries(conn, batch):
    await conn.executemany(
        "INSERT INTO ledger_deliveries (event_id, publisher, resource_code, subject_id, system_code,"
        " items, occurred_at, accepted_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
        [(r["event_id"], r["publisher"], r["resource_code"], r["subject_id"], r.get("system_code"),
          json.dumps(r["items"], ensure_ascii=False), r["occurred_at"], _ts(ts)) for r, ts in batch])


async def _feed_deliveries(conn, batch):
    await conn.executemany(
        "INSERT INTO ledger_feed_deliveries (event_id, subscriber, publisher, resource_code, subject_id,"
        " grant_id, purpose, digest, delivered_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
        [(r["event_id"], r["subscriber"], r["publisher"], r["resource_code"], r["subject_id"], r["grant_id"],
          r["purpose"], r["digest"], r["delivered_at"]) for r, _ in batch])


async def _rejects(conn, batch):
    await conn.executemany(
        "INSERT INTO ledger_rejects (reject_id, source_topic, source_partition, source_offset, code,"
        " reason, publisher, original_event_id, rule_ids, raw, rejected_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING",
        [(r["reject_id"], r["source_topic"], r["source_partition"], r["source_offset"], r["code"],
          r["reason"], r["publisher"], r["original_event_id"], r["rule_ids"], r["raw"], r["rejected_at"])
         for r, _ in batch])


async def _catalog_entries(conn, batch):
    # state, not history: the newest version of an entry wins, a replayed older one changes nothing
    await conn.executemany(
        "INSERT INTO catalog_entries (resource_code, version, level, county, provider, name, share_attribute,"
        " open_attribute, base_database, system_code, update_cycle, content, approved_at, approved_by,"
        " submission_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
        " ON CONFLICT (resource_code) DO UPDATE SET version = EXCLUDED.version, level = EXCLUDED.level,"
        " county = EXCLUDED.county, provider = EXCLUDED.provider, name = EXCLUDED.name,"
        " share_attribute = EXCLUDED.share_attribute, open_attribute = EXCLUDED.open_attribute,"
        " base_database = EXCLUDED.base_database, system_code = EXCLUDED.system_code,"
        " update_cycle = EXCLUDED.update_cycle, content = EXCLUDED.content, approved_at = EXCLUDED.approved_at,"
        " approved_by = EXCLUDED.approved_by, submission_id = EXCLUDED.submission_id"
        " WHERE catalog_entries.version < EXCLUDED.version",
        [(r["resource_code"], r["version"], r["level"], r["county"], r["entry"]["provider"], r["entry"]["name"],
          r["entry"]["share_attribute"], r["entry"]["open_attribute"], r["entry"]["base_database"],
          r["entry"]["system_code"], r["entry"]["update_cycle"], json.dumps(r["entry"], ensure_ascii=False),
          r["approved_at"], r["approved_by"], r["submission_id"]) for r, _ in batch])


async def _catalog_decisions(conn, batch):
    await conn.executemany(
        "INSERT INTO catalog_decisions (event_id, subject_kind, subject_id, resource_code, department, status,"
        " reasons, rule_ids, late, due_on, decided_by, occurred_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING",
        [(r["event_id"], r["subject_kind"], r["subject_id"], r["resource_code"], r["department"], r["status"],
          r["reasons"], r["rule_ids"], r["late"], r["due_on"], r["decided_by"], r["occurred_at"])
         for r, _ in batch])


async def _responsibilities(conn, batch):
    for r, _ in batch:  # each list replaces the department's previous one
        await conn.execute("DELETE FROM responsibility_lists WHERE department = $1", r["department"])
        await conn.executemany(
            "INSERT INTO responsibility_lists (department, resource_code, name, update_cycle, system_code,"
            " derived_at) VALUES ($1,$2,$3,$4,$5,$6)",
            [(r["department"], x["resource_code"], x["name"], x["update_cycle"], x["system_code"],
              r["occurred_at"]) for x in r["resources"]])


async def _notices(conn, batch):
    await conn.executemany(
        "INSERT INTO deadline_notices (notice_id, kind, deadline_id, case_type, case_id, party, due_on,"
        " provisional, rule_id, message, occurred_at) VALUES ($1,$2,$3,$4,$5,$6,$7::text::date,$8,$9,$10,$11)"
        " ON CONFLICT DO NOTHING",
        [(r["notice_id"], r["kind"], r["deadline_id"], r["case_type"], r["case_id"], r["party"], r["due_on"],
          r["provisional"], r["rule_id"], r["message"], r["occurred_at"]) for r, _ in batch])


async def _grants(conn, batch):
    await conn.executemany(
        "INSERT INTO grants (grant_id, grantee, provider, resource_code, items, subjects, purpose, valid_from,"
        " valid_until, revoked, revoked_reason, granted_by, request_id, granted_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8::text::date,$9::text::date,$10,$11,$12,$13,$14)"
        " ON CONFLICT (grant_id) DO UPDATE SET revoked = grants.revoked OR EXCLUDED.revoked,"
        " revoked_reason = COALESCE(grants.revoked_reason, EXCLUDED.revoked_reason)",
        [(g["grant_id"], g["grantee"], g["provider"], g["resource_code"], g["items"], g["subjects"], g["purpose"],
          g["valid_from"], g["valid_until"], g["revoked"], g["revoked_reason"], g["granted_by"], g["request_id"],
          g["granted_at"]) for g, _ in batch])


async def _share_decisions(conn, batch):
    await conn.executemany(
        "INSERT INTO share_decisions (event_id, request_id, department, resource_code, status, reasons, rule_ids,"
        " grant_id, due_on, occurred_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING",
        [(r["event_id"], r["request_id"], r["department"], r["resource_code"], r["status"], r["reasons"],
          r["rule_ids"], r["grant_id"], r["due_on"], r["occurred_at"]) for r, _ in batch])


async def _alerts(conn, batch):
    await conn.executemany(
        "INSERT INTO alerts (alert_id, kind, rule_ids, department, source_department, system_code, resource_code,"
        " items, message, first_seen, last_seen) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)"
        " ON CONFLICT (alert_id) DO UPDATE SET last_seen = GREATEST(alerts.last_seen, EXCLUDED.last_seen)",
        [(a["alert_id"], a["kind"], a["rule_ids"], a["department"], a["source_department"], a["system_code"],
          a["resource_code"], a["items"], a["message"], a["occurred_at"]) for a, _ in batch])
    await conn.executemany(
        "INSERT INTO alert_subjects (alert_id, subject_id, seen_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
        [(a["alert_id"], a["subject_id"], a["occurred_at"]) for a, _ in batch])


# record type -> (ledger table, writer)
WRITERS = {
    "govbus.exchange.DataDelivery": ("ledger_deliveries", _deliveries),
    "govbus.exchange.FeedDelivery": ("ledger_feed_deliveries", _feed_deliveries),
    "govbus.ops.Reject": ("ledger_rejects", _rejects),
    "govbus.catalog.CatalogEntry": ("catalog_entries", _catalog_entries),
    "govbus.catalog.CatalogDecision": ("catalog_decisions", _catalog_decisions),
    "govbus.catalog.ResponsibilityList": ("responsibility_lists", _responsibilities),
    "govbus.deadlines.Notice": ("deadline_notices", _notices),
    "govbus.sharing.Grant": ("grants", _grants),
    "govbus.sharing.ShareDecision": ("share_decisions", _share_decisions),
    "govbus.ops.Alert": ("alerts", _alerts),
}


def ledger_pattern(prefix: str) -> str:
    return (rf"^{re.escape(prefix)}govbus\.(deliveries\.accepted|rejects|feed\..+|catalog|catalog\.decisions"
            r"|catalog\.responsibilities|notices|grants|sharing\.decisions|alerts)$")


class LedgerSink:
    def __init__(self, dsn: str, *, max_backoff: float = 5.0):
        self.dsn = dsn
        self.max_backoff = max_backoff
        self.codec = default_codec()
        self.batch: dict[str, list[tuple[dict, int]]] = defaultdict(list)
        self._pool: asyncpg.Pool | None = None

    def add(self, value: bytes | None, timestamp_ms: int) -> None:
        try:
            d = self.codec.decode(value or b"")
        except CodecError as exc:
            log.error("ledger input unreadable, skipped: %s", exc.reason)
            return
        if d.name in WRITERS:
            self.batch[d.name].append((d.record, timestamp_ms))

    async def _write(self) -> None:
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
            async with self._pool.acquire() as conn, conn.transaction():
                for name, records in self.batch.items():
                    if records:
                        await WRITERS[name][1](conn, records)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncio.TimeoutError,
                # a connection cut in the middle of a statement, found out by the transaction's rollback
                asyncpg.InternalClientError) as exc:
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
                metrics.LEDGER_ROWS.labels(WRITERS[name][0]).inc(len(rows))
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
        max_poll_interval_ms=30 * 60 * 1000, isolation_level="read_committed",
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
