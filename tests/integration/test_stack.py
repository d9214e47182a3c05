"""The local stack and its administration, against the real broker and database."""

import logging
import uuid
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumers.queries import connect
from ops import db
from ops.stack import LocalKafka
from topics.admin import apply_topics, not_leading
from topics.registry import REJECTS, SUBSCRIPTIONS
from topics.settings import kafka_options


async def test_broker_answers_a_metadata_request(stack):
    kafka = LocalKafka(stack)
    kafka.bootstrap = stack.bootstrap
    assert await kafka.answers()
    kafka.bootstrap = "127.0.0.1:1"  # nothing listens there
    assert not await kafka.answers(timeout=1)


async def test_topics_apply_creates_once_then_reports_drift(stack):
    s = replace(stack, topic_prefix=f"it-{uuid.uuid4().hex[:10]}.")
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options())
    await admin.start()
    try:
        # someone created the rejects topic by hand, with one partition, compaction, and two replicas required in sync
        await admin.create_topics([NewTopic(s.topic_prefix + REJECTS.name, 1, 1,
                                            topic_configs={"cleanup.policy": "compact", "min.insync.replicas": "2"})])
    finally:
        await admin.close()
    first = await apply_topics(s)
    assert s.topic_prefix + SUBSCRIPTIONS.name in first.created
    assert s.topic_prefix + REJECTS.name not in first.created
    assert any("rejects: 1 partitions, declared 3" in d for d in first.drift)
    assert any("rejects: cleanup.policy=compact, declared delete" in d for d in first.drift)
    assert first.brokers == 1  # so replication is declared at 1 copy, 1 in sync
    assert any("rejects: min.insync.replicas=2, declared 1 for a cluster of 1 broker; set it with kafka-configs.sh"
               in d for d in first.drift)
    assert not any("replication factor" in d for d in first.drift)
    second = await apply_topics(s)
    assert second.created == []
    assert sorted(second.drift) == sorted(first.drift)
    assert len(second.unchanged) == len(first.created)


async def test_what_topics_apply_created_takes_writes_at_once(stack, caplog):
    """A broker names a new partition's leader a moment before that leader takes writes for it; apply returns only once
    every partition it created does, so that a department's first publication is not refused and retried."""
    s = replace(stack, topic_prefix=f"it-{uuid.uuid4().hex[:10]}.")
    report = await apply_topics(s)
    caplog.set_level(logging.WARNING, logger="aiokafka")
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options())
    await admin.start()
    try:
        described = await admin.describe_topics(report.created)
        partitions = [(m["topic"], p["partition"]) for m in described for p in m["partitions"]]
        assert len(partitions) > 300
        assert await not_leading(admin, described) == []
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(), acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:  # one record to every partition created, at once
        sent = [await producer.send(t, key=b"k", value=b"v", partition=p) for t, p in partitions]
        for fut in sent:
            await fut
    finally:
        await producer.stop()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")] == []


async def test_migrations_are_recorded_and_safe_to_rerun(stack):
    assert await db.migrate(stack.dsn) == []
    conn = await connect(stack.dsn)
    try:
        names = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
        assert names == sorted(p.name for p in db.MIGRATIONS.glob("*.sql"))
        assert await conn.fetchval("SELECT to_regclass('ledger_rejects') IS NOT NULL")
    finally:
        await conn.close()
