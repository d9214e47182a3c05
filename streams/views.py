"""A compacted topic read in full by every worker, like a global table.

Small, read-everywhere state (subscriptions; later the catalog, grants and the calendar)
lives in compacted topics. Each worker reads such a topic from the beginning without a
consumer group and keeps following it; `wait_ready()` returns once it has caught up with
the end offsets seen at start, so a worker never routes with a half-loaded view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("govbus.views")


class CompactedView:
    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None]):
        self.bootstrap = bootstrap
        self.topic = topic
        self.apply = apply
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            # metadata for a topic not yet seen by this client
            await self._consumer._client.force_metadata_update()  # noqa: SLF001
            parts = self._consumer.partitions_for_topic(self.topic) or set()
        if not parts:
            raise RuntimeError(f"topic {self.topic} does not exist: run `govbus topics apply`")
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._follow(ends), name=f"view:{self.topic}")

    async def _follow(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self._ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for rec in records:
                    try:
                        self.apply(rec.key, rec.value)
                    except Exception:  # a bad record in a view must not stop the worker
                        log.exception("%s: could not apply the record at offset %s", self.topic, rec.offset)
            if pending:
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending:
                    log.info("view of %s loaded", self.topic)
                    self._ready.set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._consumer:
            await self._consumer.stop()
