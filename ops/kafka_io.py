"""Sending events from the CLI, and waiting for what the bus answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.codec import default_codec
from topics.registry import TopicSpec, name_of
from topics.settings import settings


async def send_events(spec: TopicSpec, events: list[tuple[bytes, str, dict]]) -> None:
    """Send (key, schema name, record) events to a declared topic and wait for Kafka's acknowledgement."""
    s = settings()
    codec = default_codec()
    values = [(key, codec.encode(schema, rec)) for key, schema, rec in events]  # refuse before sending any
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in values:
            await producer.send(name_of(spec, s.topic_prefix), key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


class Answers:
    """Records that appear on a topic from now on, e.g. the decisions on what one just submitted."""

    def __init__(self, spec: TopicSpec, schema: str):
        s = settings()
        self.topic = name_of(spec, s.topic_prefix)
        self.schema = schema
        self.consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False)

    async def __aenter__(self) -> Answers:
        from topics.views import partitions_of

        await self.consumer.start()
        try:
            tps = await partitions_of(self.consumer, self.topic)
        except BaseException:
            await self.consumer.stop()
            raise
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # pin the start position before anything is sent
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def wait(self, done: Callable[[list[dict]], bool], timeout: float) -> list[dict]:
        codec = default_codec()
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(got):
            batches = await self.consumer.getmany(timeout_ms=200)
            for recs in batches.values():
                got.extend(codec.decode(r.value, self.schema).record for r in recs)
            await asyncio.sleep(0)
        return got


async def send_and_wait(inbox: TopicSpec, events: list[tuple[bytes, str, dict]], answers: TopicSpec,
                        answer_schema: str, concerns: Callable[[dict], bool], done: Callable[[list[dict]], bool],
                        wait: float) -> list[dict]:
    """Send events to an inbox and return the answers that concern them, once `done` or after `wait` s."""
    async with Answers(answers, answer_schema) as listener:
        await send_events(inbox, events)
        if wait <= 0:
            return []
        got = await listener.wait(lambda got: done([a for a in got if concerns(a)]), wait)
    return [a for a in got if concerns(a)]
