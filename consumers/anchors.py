"""The ledger's anchors: the head of each hash chain (table, row number, hash) put on a Kafka topic as the
ledger grows, so that a table rewritten whole, chain and all, no longer matches what was anchored (R-39.1)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from consumers.chain import CHAINED
from schemas.codec import default_codec
from schemas.errors import CodecError
from topics import registry, views
from topics.settings import all_delivered, kafka_options, start_client

ANCHOR = "govbus.ledger.Anchor"


async def heads(db) -> dict[str, tuple[int, bytes]]:
    """Each chained table's last sealed row number and hash, read on a connection or a pool."""
    out = {}
    for t in CHAINED.values():
        row = await db.fetchrow(f"SELECT chain_seq, row_hash FROM {t.name} WHERE row_hash IS NOT NULL"
                                " ORDER BY chain_seq DESC LIMIT 1")
        if row is not None:
            out[t.name] = (row["chain_seq"], bytes(row["row_hash"]))
    return out


def anchor_records(heads: dict[str, tuple[int, bytes]], now: datetime) -> list[dict]:
    """Anchor records of the tables that hold rows."""
    return [{"anchor_id": f"{table}:{seq}", "anchored_at": now, "table": table, "chain_seq": seq,
             "row_hash": h.hex()} for table, (seq, h) in heads.items()]


async def send_anchors(producer: AIOKafkaProducer, heads: dict[str, tuple[int, bytes]], prefix: str = "") -> int:
    """Put the heads on the anchors topic and wait for the broker; the number sent."""
    codec = default_codec()
    topic = registry.name_of(registry.LEDGER_ANCHORS, prefix)
    records = anchor_records(heads, datetime.now(UTC))
    await all_delivered([await producer.send(topic, key=rec["table"].encode(), value=codec.encode(ANCHOR, rec))
                         for rec in records])
    return len(records)


async def anchor(bootstrap: str, dsn: str, prefix: str = "") -> int:
    """Anchor the chain heads now; the number of tables anchored."""
    conn = await asyncpg.connect(dsn)
    try:
        now = await heads(conn)
    finally:
        await conn.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all")
    await start_client(producer)
    try:
        return await send_anchors(producer, now, prefix)
    finally:
        await producer.stop()


async def read_anchors(bootstrap: str, prefix: str = "") -> tuple[list[dict], int]:
    """Every anchor on the topic, and how many of its records are not anchors at all."""
    codec = default_codec()
    topic = registry.name_of(registry.LEDGER_ANCHORS, prefix)
    anchors, unreadable = [], 0
    async for recs in views.read_to_end(bootstrap, topic):
        for r in recs:
            try:
                anchors.append(codec.decode(r.value, ANCHOR).record)
            except CodecError:
                unreadable += 1
    return anchors, unreadable
