"""Outputs through several producers (lanes): every partition's records reach the broker in the order they were
added, batch after batch, whichever lane carries them."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.outputs import LANES, Outputs, lanes
from topics.admin import writable
from topics.settings import kafka_options

pytestmark = pytest.mark.integration


async def test_each_partition_keeps_its_order_across_batches_and_lanes(stack):
    topic = f"it-lanes-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap, **kafka_options())
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    await writable(admin, [topic])
    producers = lanes(stack.bootstrap, kafka_options())
    for p in producers:
        await p.start()
    try:
        assert LANES > 1
        acks = []
        for batch in range(8):  # submitted one after another without waiting, as the worker keeps batches in flight
            out = Outputs(producers, {topic: 6})
            for i in range(300):
                out.add(topic, f"k{i % 37}".encode(), f"{batch}:{i}".encode())
            acks.append(await out.submit())
        for a in acks:
            await a
        used = {id(Outputs(producers, {topic: 6}).lane((topic, p))) for p in range(6)}
        assert len(used) == LANES  # the partitions are spread over every lane

        consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, **kafka_options(), auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        seen: dict[int, list[tuple[int, int]]] = defaultdict(list)
        while sum(len(v) for v in seen.values()) < 8 * 300:
            for tp, recs in (await consumer.getmany(timeout_ms=2000)).items():
                seen[tp.partition] += [tuple(map(int, r.value.split(b":"))) for r in recs]
        await consumer.stop()
        assert sum(len(v) for v in seen.values()) == 8 * 300
        for partition, order in seen.items():
            assert order == sorted(order), partition  # batch by batch, and within a batch as added
    finally:
        for p in producers:
            await p.stop()
        await admin.delete_topics([topic])
        await admin.close()
