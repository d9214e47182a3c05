"""A consumer in incremental fetch sessions (topics/fetch_sessions.py) against the real broker: every record once and
in order, idle fetches that name no partition, and a session the broker refuses closed and opened again with
nothing lost or read twice."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from topics.admin import writable
from topics.fetch_sessions import use_fetch_sessions
from topics.settings import kafka_options

pytestmark = pytest.mark.integration

PARTITIONS = 8


async def produce(producer, topics: list[str], wave: int) -> dict[TopicPartition, list[bytes]]:
    sent: dict[TopicPartition, list[bytes]] = {}
    futures = []
    for t in topics[:2]:  # the third topic stays idle, as most inbound topics do
        for p in range(PARTITIONS):
            for i in range(5):
                value = f"{t}/{p}/{wave}/{i}".encode()
                sent.setdefault(TopicPartition(t, p), []).append(value)
                futures.append(await producer.send(t, value, partition=p))
    await asyncio.gather(*futures)
    return sent


async def take(consumer, want: int, timeout: float = 30) -> dict[TopicPartition, list[bytes]]:
    got: dict[TopicPartition, list[bytes]] = {}
    count = 0
    async with asyncio.timeout(timeout):
        while count < want:
            for tp, recs in (await consumer.getmany(timeout_ms=200)).items():
                got.setdefault(tp, []).extend(r.value for r in recs)
                count += len(recs)
    return got


async def test_a_session_carries_every_record_once_names_only_what_moved_and_survives_a_refusal(stack, caplog):
    topics = [f"it-fs-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap, **kafka_options())
    await admin.start()
    await admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics])
    await writable(admin, topics)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, **kafka_options(), acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, **kafka_options(), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        sessions = use_fetch_sessions(consumer)
        named: list[set[TopicPartition]] = []  # the partitions named on the wire by each fetch in a session
        plan = consumer._fetcher._get_actions_per_node  # noqa: SLF001

        def spy(assignment):
            fetches, *rest = plan(assignment)
            named.extend(set(req.send) for _node, req in fetches if req.session_id)
            return fetches, *rest

        consumer._fetcher._get_actions_per_node = spy  # noqa: SLF001
        everything = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(everything)

        sent = await produce(producer, topics, 0)
        assert await take(consumer, 80) == sent
        (session,) = sessions.values()
        assert session.id and set(session.held) == set(everything)

        await asyncio.sleep(0.7)
        # once the session is open, fetches name the 16 partitions read from (at their new offsets), no other
        assert set().union(*named) == set(sent)
        named.clear()
        await asyncio.sleep(1.5)  # idle: fetch after fetch held by the broker, none naming a partition
        assert len(named) >= 2 and not set().union(*named)

        sent = await produce(producer, topics, 1)
        assert await take(consumer, 80) == sent  # new records, though no fetch named their partitions

        first = session.id
        session.epoch += 10  # the broker refuses the next fetch: INVALID_FETCH_SESSION_EPOCH
        with caplog.at_level(logging.INFO, logger="govbus.fetch"):
            sent = await produce(producer, topics, 2)
            assert await take(consumer, 80) == sent
        assert "closed by the broker (error 71)" in caplog.text
        assert session.id and session.id != first  # a full fetch opened another
        assert not (await consumer.getmany(timeout_ms=1000))  # nothing read twice
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics(topics)
        await admin.close()
