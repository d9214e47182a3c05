"""A followed view (topics.views.CompactedView) holds every change acknowledged before the moment it is asked about,
also after it has sat idle longer than its follower's fetch waits, for a topic of one partition and of several, and when
several views share one follower (as a worker's do)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from topics.admin import writable
from topics.settings import kafka_options
from topics.views import CompactedView, ViewFollower

pytestmark = pytest.mark.integration


@pytest.mark.rule("R-26.2")
@pytest.mark.parametrize("partitions", [1, 3])
async def test_a_change_acknowledged_while_the_view_was_idle_is_held_once_asked(stack, partitions):
    topic = f"it-view-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap, **kafka_options())
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                        topic_configs={"cleanup.policy": "compact"})])
    await writable(admin, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, **kafka_options(), acks="all")
    await producer.start()
    held: dict[bytes, bytes | None] = {}
    view = CompactedView(stack.bootstrap, topic, held.__setitem__)
    try:
        await producer.send_and_wait(topic, b"grant", key=b"G-1", partition=0)
        await view.start()
        await view.wait_ready(30)
        assert held == {b"G-1": b"grant"}
        # idle past the client's fetch wait (500 ms): the follower's fetch is one the broker is holding
        await asyncio.sleep(1.5)
        for p in range(partitions):  # a revocation on every partition, each acknowledged before the moment
            await producer.send_and_wait(topic, None, key=f"G-{p + 1}".encode(), partition=p)
        moment = time.time()
        await asyncio.wait_for(view.ensure_fresh_since(moment), 30)
        assert held == {f"G-{p + 1}".encode(): None for p in range(partitions)}
    finally:
        await view.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


@pytest.mark.rule("R-26.2")
async def test_views_sharing_one_follower_each_get_their_own_topic_and_freshness(stack):
    topics = [f"it-views-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap, **kafka_options())
    await admin.start()
    await admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1,
                                        topic_configs={"cleanup.policy": "compact"}) for t in topics])
    await writable(admin, topics)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, **kafka_options(), acks="all")
    await producer.start()
    held: list[dict[bytes, bytes | None]] = [{}, {}]
    views = [CompactedView(stack.bootstrap, t, h.__setitem__) for t, h in zip(topics, held, strict=True)]
    follower = ViewFollower(stack.bootstrap, views)
    try:
        await producer.send_and_wait(topics[0], b"grant", key=b"G-1")
        await follower.start()
        await follower.wait_ready(30)
        assert held == [{b"G-1": b"grant"}, {}]  # the empty topic's view is ready too
        await asyncio.sleep(1.5)
        await producer.send_and_wait(topics[1], b"flag", key=b"C-1")
        await producer.send_and_wait(topics[0], None, key=b"G-1")
        asked: list[list] = []
        ask = follower.end_offsets

        async def counted(tps):
            asked.append(sorted(tps))
            return await ask(tps)

        follower.end_offsets = counted
        moment = time.time()
        await asyncio.wait_for(asyncio.gather(*(v.ensure_fresh_since(moment) for v in views)), 30)
        assert held == [{b"G-1": None}, {b"C-1": b"flag"}]
        # both views asked at once: one ListOffsets for the two, not one each
        assert asked == [sorted(tp for v in views for tp in v._tps)]  # noqa: SLF001
        await asyncio.wait_for(asyncio.gather(*(v.ensure_fresh_since(moment) for v in views)), 30)
        assert len(asked) == 1  # fresh since that moment already: no round trip
    finally:
        await follower.stop()
        await producer.stop()
        await admin.delete_topics(topics)
        await admin.close()
