"""Auditing the ledger: its hash chains walked row by row and held against the anchors on Kafka; what does not
hold is raised as a suspected-tampering alert for the authority (R-39.1, R-40.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from consumers import chain
from consumers.chain import CHAINED, Break, ChainedTable
from consumers.ledger import ALERT, TAMPERING
from schemas.codec import default_codec
from topics import registry
from topics.settings import all_delivered, kafka_options, start_client

PAGE = 20_000


@dataclass
class Verification:
    """What `verify` checked and what it found, the first broken row of each table first."""

    rows: dict[str, int] = field(default_factory=dict)  # rows walked per table
    anchors: int = 0  # anchors held against the tables
    breaks: list[Break] = field(default_factory=list)
    # anchors of rows after the heads a restore went back to, anchored before it: that history was replayed
    superseded: int = 0
    restores: list[dict] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks


async def _walk(conn, table: ChainedTable, since: datetime | None) -> tuple[Break | None, int]:
    first = 1
    if since is not None:
        first = await conn.fetchval(f"SELECT min(chain_seq) FROM {table.name} WHERE recorded_at >= $1", since)
        if first is None:
            return None, 0
    prev = chain.GENESIS
    if first > 1:
        stored = await conn.fetchval(f"SELECT row_hash FROM {table.name} WHERE chain_seq = $1", first - 1)
        if stored is None:
            return Break(table.name, first - 1, (), "is missing or carries no hash"), 0
        prev = bytes(stored)
    walked, last = 0, first - 1
    sql = (f"SELECT chain_seq, row_hash, {table.select()} FROM {table.name}"
           f" WHERE chain_seq > $1 ORDER BY chain_seq LIMIT {PAGE}")
    jsonb = table.columns.index("items") + 2 if table.name == "ledger_deliveries" else None
    while True:
        rows = await conn.fetch(sql, last)
        if not rows:
            return None, walked
        broken, good, prev = chain.first_break(table, (_read(r, jsonb) for r in rows), prev, last + 1)
        if broken:
            return broken, walked + good - last
        walked += len(rows)
        last = rows[-1]["chain_seq"]


def _read(r, jsonb: int | None) -> tuple[int, bytes | None, tuple]:
    values = tuple(r)
    if jsonb is not None:
        values = (*values[:jsonb], json.loads(values[jsonb]), *values[jsonb + 1:])
    return values[0], values[1], values[2:]


async def _held_against(conn, table: ChainedTable, anchors: list[dict]) -> Break | None:
    """The lowest anchored row that is gone or whose hash is not the one anchored."""
    if not anchors:
        return None
    keys = ", ".join(table.key)
    rows = {r["chain_seq"]: r for r in await conn.fetch(
        f"SELECT chain_seq, row_hash, {keys} FROM {table.name} WHERE chain_seq = ANY($1::bigint[])",
        sorted({a["chain_seq"] for a in anchors}))}
    for a in sorted(anchors, key=lambda a: a["chain_seq"]):
        row = rows.get(a["chain_seq"])
        when = f"{a['anchored_at']:%Y-%m-%d %H:%M:%S} UTC"
        if row is None:
            return Break(table.name, a["chain_seq"], (), f"is gone, though anchored on {when}: rows were removed")
        if row["row_hash"] is None or bytes(row["row_hash"]).hex() != a["row_hash"]:
            return Break(table.name, a["chain_seq"], tuple(row[k] for k in table.key),
                         f"does not match its anchor of {when}: the table was rewritten up to this row")
    return None


def superseded_by_restore(anchor: dict, restores: list[dict]) -> bool:
    """An anchor of a row past the chain head a later restore went back to: the rows after that head were lost
    with the database and appended again by the replay, so they no longer have the hashes anchored then."""
    for r in restores:
        head = r["chain_heads"].get(anchor["table"])
        if anchor["anchored_at"] < r["restored_at"] and anchor["chain_seq"] > (head[0] if head else 0):
            return True
    return False


async def restores_of(conn) -> list[dict]:
    if not await conn.fetchval("SELECT to_regclass('ledger_restores') IS NOT NULL"):
        return []
    return [{"backup_id": r["backup_id"], "restored_at": r["restored_at"], "chain_heads": json.loads(r["chain_heads"])}
            for r in await conn.fetch("SELECT backup_id, restored_at, chain_heads::text AS chain_heads"
                                      " FROM ledger_restores ORDER BY restore_id")]


async def verify(dsn: str, anchors: list[dict], since: datetime | None = None) -> Verification:
    """Walk every chained table (from the first row recorded at `since`, else from its start) and hold the
    tables against `anchors`; a break names the first row that does not hold."""
    out = Verification()
    conn = await asyncpg.connect(dsn)
    try:
        # one snapshot for the whole walk, so rows appended meanwhile do not look like a moving target
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            out.restores = await restores_of(conn)
            for table in CHAINED.values():
                broken, out.rows[table.name] = await _walk(conn, table, since)
                mine = [a for a in anchors if a["table"] == table.name]
                kept = [a for a in mine if not superseded_by_restore(a, out.restores)]
                out.superseded += len(mine) - len(kept)
                mine = kept
                out.anchors += len(mine)
                unanchored = await _held_against(conn, table, mine)
                found = [b for b in (broken, unanchored) if b]
                out.breaks.extend(sorted(found, key=lambda b: b.seq)[:1])
    finally:
        await conn.close()
    return out


def tampering_alert(b: Break, now: datetime) -> dict:
    """The alert record for the authority (R-40.1): which table, which row, what is wrong."""
    aid = f"{TAMPERING}:{b.table}:{b.seq}"
    subject = ":".join(map(str, b.key)) or str(b.seq)
    return {"event_id": f"{aid}:{subject}", "alert_id": aid, "occurred_at": now, "kind": TAMPERING,
            "rule_ids": ["R-39.1", "R-40.1"], "department": "unknown", "source_department": None,
            "system_code": None, "resource_code": b.table, "items": [], "subject_id": subject,
            "message": (f"the ledger does not hold: {b.describe()}. Leave the ledger and the topics as they are "
                        "and inform the authority and the security officer")}


async def raise_alerts(bootstrap: str, breaks: list[Break], prefix: str = "") -> None:
    codec = default_codec()
    topic = registry.name_of(registry.ALERTS, prefix)
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all")
    await start_client(producer)
    try:
        sends = []
        for b in breaks:
            rec = tampering_alert(b, now)
            sends.append(await producer.send(topic, key=rec["alert_id"].encode(), value=codec.encode(ALERT, rec)))
        await all_delivered(sends)
    finally:
        await producer.stop()
