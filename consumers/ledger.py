"""The ledger sink: every accepted publication, every delivery to a feed and every reject, written to
PostgreSQL in batches, idempotent on event id (R-8.1); what the database refuses is set aside, never dropped."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from consumers import anchors, chain
from consumers.chain import CHAINED, ChainedTable
from consumers.errors import ConsumerError, RecordRefused, classify
from schemas.codec import default_codec
from schemas.errors import CodecError
from topics import metrics, registry
from topics.settings import all_delivered, kafka_options, start_client

log = logging.getLogger("govbus.ledger")


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


CHAIN_LOCK = 0x1ED6E2  # advisory lock id: one appender at a time, so two ledger instances never fork a chain


async def lock_chains(conn) -> None:
    """Hold the chains until the transaction ends; taken again inside it, it costs nothing."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)


def row_values(table: ChainedTable, row) -> tuple:
    """A row read back from a chained table as the chain hashes it (jsonb arrives as text)."""
    values = tuple(row[c] for c in table.columns)
    if table.name == "ledger_deliveries":
        i = table.columns.index("items")
        values = (*values[:i], json.loads(values[i]), *values[i + 1:])
    return values


async def seal(conn, table: ChainedTable, chunk: int = 20_000) -> int:
    """Compute the hashes of rows recorded before the chain began (0006), in order; the number sealed."""
    sealed = 0
    while True:
        rows = await conn.fetch(f"SELECT chain_seq, {', '.join(table.columns)} FROM {table.name}"
                                " WHERE row_hash IS NULL ORDER BY chain_seq LIMIT $1", chunk)
        if not rows:
            return sealed
        first = rows[0]["chain_seq"]
        prev = await conn.fetchval(f"SELECT row_hash FROM {table.name} WHERE chain_seq = $1", first - 1)
        if prev is None and first != 1:
            raise RecordRefused(f"{table.name} row {first - 1} is missing or unsealed; run `govbus audit verify`",
                                "ChainBroken")
        hashes = chain.extend(prev or chain.GENESIS, table.name, first, (row_values(table, r) for r in rows))
        await conn.executemany(f"UPDATE {table.name} SET row_hash = $2 WHERE chain_seq = $1",
                               [(r["chain_seq"], h) for r, h in zip(rows, hashes, strict=True)])
        sealed += len(rows)


async def seal_all(conn) -> int:
    """Seal whatever the chained tables hold unsealed (rows from before the chain); the number sealed."""
    sealed = 0
    for table in CHAINED.values():
        async with conn.transaction():
            await lock_chains(conn)
            sealed += await seal(conn, table)
    return sealed


async def chain_head(conn, table: ChainedTable) -> tuple[int, bytes]:
    """The last row's number and hash (0 and the genesis hash for an empty table)."""
    row = await conn.fetchrow(f"SELECT chain_seq, row_hash FROM {table.name} ORDER BY chain_seq DESC LIMIT 1")
    if row is None:
        return 0, chain.GENESIS
    if row["row_hash"] is None:
        await seal(conn, table)
        return await chain_head(conn, table)
    return row["chain_seq"], bytes(row["row_hash"])


async def _unrecorded(conn, table: ChainedTable, rows: list[tuple[tuple, tuple]]) -> list[tuple[tuple, tuple]]:
    """The rows whose key the table does not hold yet, each once: a replayed batch must not lengthen the chain."""
    at = [table.columns.index(k) for k in table.key]
    keys = [tuple(values[i] for i in at) for values, _ in rows]
    on = " AND ".join(f"t.{k} = k.k{n}" for n, k in enumerate(table.key))
    unnest = ", ".join(f"${n + 1}::text[]" for n in range(len(table.key)))
    held = {tuple(r) for r in await conn.fetch(
        f"SELECT {', '.join('t.' + k for k in table.key)} FROM {table.name} t"
        f" JOIN unnest({unnest}) AS k({', '.join(f'k{n}' for n in range(len(table.key)))}) ON {on}",
        *([k[n] for k in keys] for n in range(len(table.key))))}
    out = []
    for key, row in zip(keys, rows, strict=True):
        if key not in held:
            held.add(key)
            out.append(row)
    return out


async def append(conn, table: ChainedTable, rows: list[tuple[tuple, tuple]]) -> int:
    """Append rows (their values as hashed, their arguments as written) to a chained table, each committing to
    the one before; rows whose key is already there are left out, as `ON CONFLICT DO NOTHING` would."""
    await lock_chains(conn)
    try:
        # most batches are new rows: written straight away, looked up first only when some were not
        async with conn.transaction():
            return await _insert(conn, table, _once(table, rows))
    except asyncpg.UniqueViolationError:
        rows = await _unrecorded(conn, table, rows)
        return await _insert(conn, table, rows) if rows else 0


def _once(table: ChainedTable, rows: list[tuple[tuple, tuple]]) -> list[tuple[tuple, tuple]]:
    at = [table.columns.index(k) for k in table.key]
    seen, out = set(), []
    for row in rows:
        key = tuple(row[0][i] for i in at)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


async def _insert(conn, table: ChainedTable, rows: list[tuple[tuple, tuple]]) -> int:
    seq, prev = await chain_head(conn, table)
    hashes = chain.extend(prev, table.name, seq + 1, (values for values, _ in rows))
    # COPY: the rows as one stream rather than an INSERT each; a key already there fails it whole, as it did them
    await conn.copy_records_to_table(
        table.name, columns=[*table.columns, "chain_seq", "row_hash"],
        records=[(*args, seq + i, h) for i, ((_, args), h) in enumerate(zip(rows, hashes, strict=True), 1)])
    return len(rows)


def _delivery_row(r, ts):
    values = (r["event_id"], r["publisher"], r["resource_code"], r["subject_id"], r.get("system_code"),
              r["items"], r["occurred_at"], _ts(ts))
    return values, (*values[:5], json.dumps(r["items"], ensure_ascii=False), *values[6:])


async def _deliveries(conn, batch):
    await append(conn, CHAINED["ledger_deliveries"], [_delivery_row(r, ts) for r, ts in batch])


async def _feed_deliveries(conn, batch):
    rows = [(r["event_id"], r["subscriber"], r["publisher"], r["resource_code"], r["subject_id"], r["grant_id"],
             r["purpose"], r["digest"], r["delivered_at"], sorted(r["items"])) for r, _ in batch]
    await append(conn, CHAINED["ledger_feed_deliveries"], [(v, v) for v in rows])


async def _rejects(conn, batch):
    rows = [(r["reject_id"], r["source_topic"], r["source_partition"], r["source_offset"], r["code"], r["reason"],
             r["publisher"], r["original_event_id"], r["rule_ids"], r["raw"], r["rejected_at"]) for r, _ in batch]
    await append(conn, CHAINED["ledger_rejects"], [(v, v) for v in rows])


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


async def _case_events(conn, batch):
    await conn.executemany(
        "INSERT INTO case_events (event_id, case_id, case_type, step, status, actor, person, requester, resource_code,"
        " subject_id, items, message, rule_ids, deadline_id, party, due_on, recipients, occurred_at)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ON CONFLICT DO NOTHING",
        [(e["event_id"], e["case_id"], e["case_type"], e["step"], e["status"], e["actor"], e["person"],
          e["requester"], e["resource_code"], e["subject_id"], e["items"], e["message"], e["rule_ids"],
          e["deadline_id"], e["party"], e["due_on"], e["recipients"], e["occurred_at"]) for e, _ in batch])


async def _open_grants(conn, batch):
    await conn.executemany(
        "INSERT INTO open_grants (grant_id, party, resource_code, items, purpose, use, award, granted_by, granted_at,"
        " case_id, revoked) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
        " ON CONFLICT (grant_id) DO UPDATE SET revoked = open_grants.revoked OR EXCLUDED.revoked",
        [(g["grant_id"], g["party"], g["resource_code"], g["items"], g["purpose"], g["use"], g["award"],
          g["granted_by"], g["granted_at"], g["case_id"], g["revoked"]) for g, _ in batch])


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
    "govbus.cases.CaseEvent": ("case_events", _case_events),
    "govbus.open.OpenGrant": ("open_grants", _open_grants),
}
LEDGER_TOPICS = tuple(spec for spec in registry.FIXED if spec.recorded)
REJECT = "govbus.ops.Reject"
ALERT = "govbus.ops.Alert"
TAMPERING = "suspected_tampering"


def ledger_pattern(prefix: str) -> str:
    names = "|".join(re.escape(spec.name) for spec in LEDGER_TOPICS)
    return rf"^{re.escape(prefix)}({names}|{re.escape(registry.FEED_PREFIX)}.+)$"


@dataclass
class Held:
    """One record of a batch, with where it came from."""

    topic: str
    partition: int
    offset: int
    raw: bytes
    timestamp_ms: int
    name: str | None = None  # record type, None when unreadable
    record: dict | None = None


@dataclass
class SetAside:
    """A record the ledger could not write, with what a person needs to put it right."""

    held: Held
    error_class: str
    error: str

    @property
    def table(self) -> str | None:
        return WRITERS[self.held.name][0] if self.held.name in WRITERS else None

    @property
    def reason(self) -> str:
        h = self.held
        what = f"this {h.name.rsplit('.', 1)[-1]}" if h.name else "this message"
        where = f"{self.table}" if self.table else "the ledger"
        return (f"the ledger could not record {what} from {h.topic}:{h.partition}:{h.offset}: "
                f"{where} refused it ({self.error_class}: {clean_text(self.error)}). It is kept in "
                "ledger_quarantine; correct the cause, then run `govbus ledger replay`.")


def clean_text(s: str) -> str:
    """A message safe to store as text: PostgreSQL's text holds no NUL."""
    return s.replace("\x00", "\\x00")


async def _quarantine(conn, items: Iterable[SetAside]) -> None:
    await conn.executemany(
        "INSERT INTO ledger_quarantine (source_topic, source_partition, source_offset, record_type, target_table,"
        " source_timestamp, raw, error_class, error, reason) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        " ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING",
        [(q.held.topic, q.held.partition, q.held.offset, q.held.name, q.table, _ts(q.held.timestamp_ms),
          q.held.raw, q.error_class, clean_text(q.error), q.reason) for q in items])


class LedgerSink:
    """`add()` records, `flush()` them in one transaction: a store that is down is waited for, a record
    the store refuses is set aside in `ledger_quarantine` and the rest of the batch is written."""

    def __init__(self, dsn: str, *, max_backoff: float = 5.0):
        self.dsn = dsn
        self.max_backoff = max_backoff
        self.codec = default_codec()
        self.batch: dict[str, list[Held]] = defaultdict(list)
        self.unreadable: list[SetAside] = []
        self._pool: asyncpg.Pool | None = None

    def add(self, value: bytes | None, timestamp_ms: int, position: tuple[str, int, int]) -> None:
        topic, partition, offset = position
        held = Held(topic, partition, offset, bytes(value or b""), timestamp_ms)
        try:
            d = self.codec.decode(held.raw)
        except CodecError as exc:
            self.unreadable.append(SetAside(held, type(exc).__name__, exc.reason))
            return
        if d.name in WRITERS:
            held.name, held.record = d.name, d.record
            self.batch[d.name].append(held)

    async def pool(self) -> asyncpg.Pool:
        return await self._connect_pool()

    async def _connect_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        return self._pool

    async def _attempt(self, one_by_one: bool) -> list[SetAside]:
        """Write the batch in one transaction; one by one (a savepoint each) when the store refused it whole."""
        aside = list(self.unreadable)
        try:
            pool = await self._connect_pool()
            async with pool.acquire() as conn, conn.transaction():
                await lock_chains(conn)  # before any savepoint: held to the commit, whichever record fails
                for name, held in self.batch.items():
                    writer = WRITERS[name][1]
                    if not one_by_one:
                        await writer(conn, [(h.record, h.timestamp_ms) for h in held])
                        continue
                    for h in held:
                        try:
                            async with conn.transaction():
                                await writer(conn, [(h.record, h.timestamp_ms)])
                        except Exception as exc:
                            err = classify(exc)
                            if err.retriable:
                                raise err from exc
                            aside.append(SetAside(h, getattr(err, "error_class", type(exc).__name__), str(err)))
                if aside:
                    await _quarantine(conn, aside)
        except Exception as exc:
            err = classify(exc)
            if err.retriable and self._pool is not None:
                self._pool.terminate()
                self._pool = None
            raise err from exc
        return aside

    async def flush(self) -> list[SetAside]:
        """Write the batch, waiting out outages; returns what was set aside in quarantine."""
        delay = None
        one_by_one = False
        try:
            while True:
                try:
                    aside = await self._attempt(one_by_one)
                    break
                except ConsumerError as exc:
                    if not exc.retriable:
                        if one_by_one:  # the quarantine itself refused: nothing more this sink can do
                            raise
                        one_by_one = True  # find the records refused; the others are written
                        continue
                    delay = min(self.max_backoff, delay * 2 if delay else exc.retry_after)
                    metrics.LEDGER_RETRIES.inc()
                    log.warning("%s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
            refused = {id(q.held) for q in aside}
            for name, held in self.batch.items():
                metrics.LEDGER_ROWS.labels(WRITERS[name][0]).inc(sum(1 for h in held if id(h) not in refused))
            metrics.SINK_LAST_WRITE.labels("ledger").set(time.time())
            # tampering is found by `govbus audit verify`, a command no Prometheus scrapes; the ledger, which
            # records its alert, counts it where the SuspectedTampering rule looks
            for h in self.batch.get(ALERT, ()):
                if h.record["kind"] == TAMPERING and id(h) not in refused:
                    metrics.ALERTS.labels(TAMPERING).inc()
            if aside:
                metrics.SINK_QUARANTINED.labels("ledger").inc(len(aside))
                for q in aside:
                    log.error("set aside in ledger_quarantine: %s", q.reason)
            return aside
        finally:
            self.batch.clear()
            self.unreadable.clear()

    async def quarantined(self) -> int:
        """Records in quarantine, not yet replayed."""
        pool = await self._connect_pool()
        return await pool.fetchval("SELECT count(*) FROM ledger_quarantine WHERE replayed_at IS NULL")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def reject_of(q: SetAside, now: datetime) -> dict:
    """The rejects-topic record that tells the publisher and the operator what was set aside."""
    rec = q.held.record or {}
    return {
        "reject_id": f"{q.held.topic}:{q.held.partition}:{q.held.offset}", "rejected_at": now,
        "source_topic": q.held.topic, "source_partition": q.held.partition, "source_offset": q.held.offset,
        "code": "ledger_refused", "reason": q.reason, "publisher": rec.get("publisher"),
        "original_event_id": rec.get("event_id"), "rule_ids": ["R-8.1"], "raw": q.held.raw,
    }


async def replay_quarantine(dsn: str, ids: Iterable[int] = ()) -> tuple[int, list[tuple[int, str]], list[int]]:
    """Write what is in quarantine again (once its cause is fixed): the number written, what the store still
    refuses (id, reason), and the ids asked for that are not waiting there. Replayed records stay in the table,
    marked, for the record."""
    codec = default_codec()
    wanted = sorted(set(ids))
    conn = await asyncpg.connect(dsn)
    written, refused = 0, []
    try:
        rows = await conn.fetch(
            "SELECT quarantine_id, raw, source_timestamp FROM ledger_quarantine WHERE replayed_at IS NULL"
            " AND (cardinality($1::bigint[]) = 0 OR quarantine_id = ANY($1::bigint[])) ORDER BY quarantine_id",
            wanted)
        absent = sorted(set(wanted) - {row["quarantine_id"] for row in rows})
        for row in rows:
            ts = int(row["source_timestamp"].timestamp() * 1000)
            try:
                d = codec.decode(row["raw"])
                if d.name not in WRITERS:
                    raise RecordRefused(f"the ledger keeps no {d.name} records", "WrongSchema")
                async with conn.transaction():
                    await WRITERS[d.name][1](conn, [(d.record, ts)])
                    await conn.execute("UPDATE ledger_quarantine SET replayed_at = now(), replay_error = NULL"
                                       " WHERE quarantine_id = $1", row["quarantine_id"])
                written += 1
            except Exception as exc:
                err = exc if isinstance(exc, CodecError) else classify(exc)
                if getattr(err, "retriable", False):
                    raise err from exc
                reason = clean_text(f"{type(exc).__name__}: {exc}")
                await conn.execute("UPDATE ledger_quarantine SET replay_error = $2 WHERE quarantine_id = $1",
                                   row["quarantine_id"], reason)
                refused.append((row["quarantine_id"], reason))
    finally:
        await conn.close()
    return written, refused, absent


def topic_label(topic: str, prefix: str) -> str:
    return registry.logical_name(topic, prefix)


async def run_ledger(bootstrap: str, dsn: str, prefix: str = "", *, group_id: str | None = None,
                     stop: asyncio.Event | None = None, batch_size: int = 2000, anchor_every: float = 60.0) -> None:
    """Consume the accepted, feed, rejects and state topics into the ledger until `stop` is set, anchoring the
    chain heads on Kafka every `anchor_every` seconds while they grow, and once more on the way out."""
    stop = stop or asyncio.Event()
    group = group_id or f"{prefix}govbus-ledger"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **kafka_options(), group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest", metadata_max_age_ms=10_000,
        max_poll_interval_ms=30 * 60 * 1000, isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all")
    rejects = registry.name_of(registry.REJECTS, prefix)
    consumer.subscribe(pattern=ledger_pattern(prefix))
    await start_client(consumer)
    await start_client(producer)
    sink = LedgerSink(dsn)
    codec = default_codec()
    counted = 0.0
    anchoring = Anchoring(producer, prefix, anchor_every)
    metrics.ALERTS.labels(TAMPERING)  # at zero from the start, so that the first alert is an increase
    committed: dict = {}  # what this ledger last committed, per partition
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=batch_size)
            await metrics.observe_lag(consumer, group, lambda t: topic_label(t, prefix))
            if time.monotonic() - counted > 15:  # what an operator replayed meanwhile shows too
                counted = time.monotonic()
                await _count_quarantine(sink)
            await anchoring.maybe(sink)
            if not batches:
                await _commit_passed(consumer, committed)
                continue
            for tp, recs in batches.items():
                metrics.RECORDS_IN.labels("ledger", topic_label(tp.topic, prefix)).inc(len(recs))
                for r in recs:
                    sink.add(r.value, r.timestamp, (r.topic, r.partition, r.offset))
            aside = await sink.flush()
            if aside:
                await _report(producer, codec, rejects, aside)
                await _count_quarantine(sink)
            try:
                # the position, not the last offset + 1: past a transaction's commit marker too
                positions = {tp: await consumer.position(tp) for tp in batches}
                await consumer.commit(positions)
                committed.update(positions)
            except (CommitFailedError, IllegalStateError) as exc:
                # a rebalance took the partitions away; their new owner rewrites the batch,
                # which the ledger's unique keys make harmless
                log.info("commit skipped after rebalance: %s", exc)
        await anchoring.maybe(sink, now=True)
    finally:
        await consumer.stop()
        await producer.stop()
        await sink.close()


async def _commit_passed(consumer: AIOKafkaConsumer, committed: dict) -> None:
    """Commit the partitions whose position has moved with no record to write: past an aborted transaction's
    records and its marker, which a read_committed consumer skips. Else the group's committed offset stays before
    them, and `govbus status` shows the ledger behind on what it has read."""
    moved = {}
    for tp in consumer.assignment():
        if consumer.highwater(tp) is None:  # not fetched from yet: its position is not known without asking
            continue
        position = await consumer.position(tp)
        if position > committed.get(tp, -1):
            moved[tp] = position
    if not moved:
        return
    try:
        await consumer.commit(moved)
        committed.update(moved)
    except (CommitFailedError, IllegalStateError) as exc:
        log.info("commit skipped after rebalance: %s", exc)


class Anchoring:
    """Puts the chain heads on the anchors topic now and then, when they have moved."""

    def __init__(self, producer: AIOKafkaProducer, prefix: str, every: float):
        self.producer, self.prefix, self.every = producer, prefix, every
        self.last = time.monotonic()
        self.sent: dict[str, tuple[int, bytes]] = {}

    async def maybe(self, sink: LedgerSink, now: bool = False) -> None:
        if not now and time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        try:
            current = await anchors.heads(await sink.pool())
            if current != self.sent:
                await anchors.send_anchors(self.producer, current, self.prefix)
                self.sent = current
        except (KafkaError, OSError, asyncpg.PostgresError) as exc:  # the next turn anchors the newer heads
            log.warning("chain heads not anchored: %s", exc)


async def _count_quarantine(sink: LedgerSink) -> None:
    try:
        metrics.SINK_QUARANTINE_SIZE.labels("ledger").set(await sink.quarantined())
    except Exception as exc:  # the next flush waits out the outage; the gauge is only a view
        log.info("quarantine not counted: %s", exc)


async def _report(producer: AIOKafkaProducer, codec, rejects: str, aside: list[SetAside]) -> None:
    """Each record set aside, on the rejects topic too; not those read from it (the table holds them)."""
    now = datetime.now(UTC)
    try:
        sends = []
        for q in aside:
            if q.held.topic != rejects:
                rec = reject_of(q, now)
                sends.append(await producer.send(rejects, key=rec["reject_id"].encode(),
                                                 value=codec.encode(REJECT, rec)))
        await all_delivered(sends)
    except KafkaError as exc:
        log.warning("set-aside records not reported on %s (they are in ledger_quarantine): %s", rejects, exc)
