"""Topics read from their beginning: to their end once (`read_to_end`, `snapshot`), or followed for good
like a global table (`CompactedView`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from topics.settings import kafka_options, start_client

log = logging.getLogger("govbus.views")


class TopicMissing(RuntimeError):
    """A declared topic is not on the broker."""


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, asking the broker when the client has not seen the topic yet."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:  # the client has not seen the topic yet: ask the broker
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        parts = cluster.partitions_for_topic(topic)
    if not parts:  # the broker names no topic a client may not describe: either may be so
        from topics.settings import settings

        user = settings().kafka_security.username or "NAME"
        raise TopicMissing(f"topic {topic} does not exist, or {user} may not read it: run `govbus topics apply` if it "
                           f"was never created; `govbus acls list --principal {user}` shows what {user} may read "
                           "(the operators' commands take the operators' credentials)")
    return [TopicPartition(topic, p) for p in sorted(parts)]


class CompactedView:
    """A compacted topic (subscriptions, the catalog, grants, the calendar) read from the beginning without a
    consumer group and followed; `wait_ready()` returns once it has caught up with the end offsets seen at
    start, so a worker never routes with a half-loaded view.

    `start()` follows the view on a consumer of its own; a worker's views share one (`ViewFollower`): one
    fetch, one wake-up for all of them while nothing changes."""

    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None]):
        self.bootstrap = bootstrap
        self.topic = topic
        self.apply = apply
        self._ready = asyncio.Event()
        self._follower: ViewFollower | None = None
        self._own_follower = False
        self._tps: list[TopicPartition] = []
        self._fresh_at = 0.0  # wall-clock time of the newest end offsets this view is known to have reached
        self._refresh: asyncio.Task | None = None

    async def start(self) -> None:
        self._own_follower = True
        await ViewFollower(self.bootstrap, [self]).start()

    async def ensure_fresh_since(self, moment: float) -> None:
        """Return once the view holds everything written to its topic before `moment` (epoch seconds).

        An input stamped after a change was acknowledged (a revocation, say) is then judged with that
        change applied. Costs one ListOffsets round trip when the view's last check predates `moment`;
        concurrent callers share it, and so do the follower's other views asking in the same turn of the loop.
        """
        if moment <= self._fresh_at:
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._catch_up())
        await asyncio.shield(self._refresh)
        if moment > self._fresh_at:  # the shared refresh started before `moment`: one more
            await self.ensure_fresh_since(moment)

    async def _catch_up(self) -> None:
        assert self._follower is not None
        await self._follower.catch_up(self)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        if self._own_follower and self._follower:
            await self._follower.stop()


class ViewFollower:
    """One consumer (no group, read_committed) following several views' topics from their beginning, each record
    applied to its topic's view; a second client of its own asks the end offsets: on the follower's connection
    the broker would answer only after the follower's pending fetch, which waits up to fetch_max_wait_ms."""

    def __init__(self, bootstrap: str, views: Iterable[CompactedView]):
        self.bootstrap = bootstrap
        self.views = {v.topic: v for v in views}
        for view in self.views.values():
            view._follower = self  # noqa: SLF001
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._joining: tuple[set[CompactedView], asyncio.Task] | None = None  # the catch-up views may still join

    async def start(self) -> None:
        options = {**kafka_options(), "group_id": None, "enable_auto_commit": False,
                   "isolation_level": "read_committed"}
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest", **options)
        await start_client(self._consumer)
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **options)
        await start_client(self._offsets)
        tps: list[TopicPartition] = []
        for view in self.views.values():
            view._tps = await partitions_of(self._consumer, view.topic)  # noqa: SLF001
            tps += view._tps  # noqa: SLF001
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self.end_offsets(tps)
        self._task = asyncio.create_task(self._follow(ends), name=f"views:{','.join(self.views)}")

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._offsets is not None
        return await self._offsets.end_offsets(tps)

    def catch_up(self, view: CompactedView) -> asyncio.Task:
        """Bring `view` up to its topic's end offsets as they are now, with every other view that asks in the
        same turn of the loop: one ListOffsets for all of them (the delivery stream asks for the grants and the
        case flags together, once a batch)."""
        if self._joining is None or self._joining[1].done():  # (done: cancelled before it asked)
            views: set[CompactedView] = set()
            self._joining = (views, asyncio.create_task(self._catch_up(views)))
        views, task = self._joining
        views.add(view)
        return task

    async def _catch_up(self, views: set[CompactedView]) -> None:
        await asyncio.sleep(0)  # the views asking in this turn of the loop join
        self._joining = None
        asked_at = time.time()
        await self.reached(await self.end_offsets([tp for view in views for tp in view._tps]))  # noqa: SLF001
        for view in views:
            view._fresh_at = max(view._fresh_at, asked_at)  # noqa: SLF001

    async def reached(self, ends: dict[TopicPartition, int]) -> None:
        """Return once the follower's position is at or past each of these offsets."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: all(self._positions.get(tp, 0) >= end for tp, end in ends.items()))

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(asyncio.gather(*(v.wait_ready() for v in self.views.values())), timeout)

    async def _follow(self, ends: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        loading = {topic: {tp for tp in view._tps if ends[tp] > 0} for topic, view in self.views.items()}  # noqa: SLF001
        while True:
            for topic in [t for t, pending in loading.items() if not pending]:
                del loading[topic]
                log.info("view of %s loaded", topic)
                self.views[topic]._ready.set()  # noqa: SLF001
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batches.items():
                apply = self.views[tp.topic].apply
                for rec in records:
                    try:
                        apply(rec.key, rec.value)
                    except Exception:  # a bad record in a view must not stop the worker
                        log.exception("%s: could not apply the record at offset %s", tp.topic, rec.offset)
            for tp in consumer.assignment():
                self._positions[tp] = await consumer.position(tp)
            async with self._advanced:
                self._advanced.notify_all()
            for pending in loading.values():
                pending.difference_update([tp for tp in pending if self._positions[tp] >= ends[tp]])

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._consumer:
            await self._consumer.stop()
        if self._offsets:
            await self._offsets.stop()


async def read_to_end(bootstrap: str, topic: str, partitions: Iterable[int] | None = None, *,
                      timeout: float | None = None) -> AsyncIterator[list]:
    """The committed records of `topic` (or of some of its partitions), from the beginning to the end offsets
    at the time of asking, in batches; `timeout` bounds the start and each fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_options(), group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed",
                                **({"request_timeout_ms": int(timeout * 1000)} if timeout else {}))
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        tps = await partitions_of(consumer, topic)
        if partitions is not None:
            wanted = set(partitions)
            tps = [tp for tp in tps if tp.partition in wanted]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await asyncio.wait_for(consumer.getmany(*pending, timeout_ms=500), timeout)
            for recs in batches.values():
                yield recs
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def snapshot(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[bytes, bytes]:
    """The latest value per key of a compacted topic, read once to its current end."""
    latest: dict[bytes, bytes] = {}
    async for recs in read_to_end(bootstrap, topic, timeout=timeout):
        for r in recs:
            if r.value is None:
                latest.pop(r.key, None)
            else:
                latest[r.key] = r.value
    return latest
