"""The subscriber SDK: read one department's authorized feed as typed records, de-duplicated by event id.

    async with Feed("NJ-MZ", group_id="NJ-MZ.app") as feed:   # groups under the department's own prefix
        async for rec in feed:
            handle(rec)          # rec.items, rec.subject_id, rec.grant_id, rec.verify() ..."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, GroupAuthorizationFailedError, TopicAuthorizationFailedError

from schemas.codec import default_codec
from schemas.errors import CodecError
from schemas.provenance import provenance_digest
from topics.acls import department_group_prefix
from topics.registry import feed_name
from topics.settings import kafka_options, settings, start_client

log = logging.getLogger("govbus.feed")
FEED = "govbus.exchange.FeedDelivery"


@dataclass(frozen=True)
class FeedRecord:
    event_id: str
    subscriber: str
    publisher: str
    resource_code: str
    subject_id: str
    system_code: str | None
    items: dict[str, Any]
    occurred_at: datetime
    delivered_at: datetime
    grant_id: str
    purpose: str | None
    digest: str
    flags: tuple[str, ...]  # under_verification, objected (the datum has an open case), correction
    case_ids: tuple[str, ...]  # the cases the flags refer to
    correction_of: str | None  # a correction: the event id of the earlier delivery whose value it replaces
    partition: int
    offset: int

    def verify(self) -> bool:
        """True when the content is what the provider published (R-28.1)."""
        return self.digest == provenance_digest(
            self.publisher, self.resource_code, self.event_id, self.subject_id, self.items
        )


class NotAuthorized(PermissionError):
    """The credentials in use may not read this feed."""


class Feed:
    """A department's feed: what it is authorized to receive, decoded, de-duplicated by event id, committed in
    batches."""

    schema = FEED
    credentials = "govbus dept credentials {}"  # the command that gives a reader of this feed its credentials

    def __init__(self, department: str, *, group_id: str | None = None, bootstrap: str | None = None,
                 prefix: str | None = None, commit_every: int = 500, commit_interval: float = 2.0,
                 dedup_window: int = 100_000, commits: bool = True):
        """`commits=False`: read the whole feed from its start, with no consumer group and committing nothing (a look
        at the feed, as `govbus feed tail` takes it); otherwise from where `group_id` last committed."""
        s = settings()
        self.department = department
        self.commits = commits
        prefix = s.topic_prefix if prefix is None else prefix
        self.topics = self._topics(department, prefix)
        self.topic = self.topics[0]
        # a department's credentials commit only with groups under its own prefix (topics.acls)
        self.group_id = group_id or self._group(department, prefix)
        self.bootstrap = bootstrap or s.bootstrap
        self.commit_every = commit_every
        self.commit_interval = commit_interval
        self.dedup_window = dedup_window
        self.codec = default_codec()
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates_dropped = 0
        self.unreadable = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit
        self._uncommitted = 0
        self._last_commit = 0.0

    @staticmethod
    def _topics(department: str, prefix: str) -> tuple[str, ...]:
        return (feed_name(department, prefix),)

    @staticmethod
    def _group(department: str, prefix: str) -> str:
        return f"{department_group_prefix(department, prefix)}feed"

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, **kafka_options(),
            group_id=self.group_id if self.commits else None,
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
        )
        try:
            await consumer.start()
            self._consumer = consumer
            if not self.commits:
                # without a group nothing asks the broker about the topics: one it leaves out is one not readable
                known = await consumer.topics()
                if any(t not in known for t in self.topics):
                    raise TopicAuthorizationFailedError(", ".join(t for t in self.topics if t not in known))
                return
            await self._prime_dedup()
        except BaseException as exc:
            self._consumer = None
            await consumer.stop()  # nothing left connected (nor reported unclosed) when the start fails
            user = settings().kafka_security.username or "this client"
            if isinstance(exc, TopicAuthorizationFailedError):
                raise NotAuthorized(
                    f"{user} may not read {', '.join(self.topics)}: each reader reads only its own feed, with the "
                    f"credentials `{self.credentials.format(self.department)}` gives it") from exc
            if isinstance(exc, GroupAuthorizationFailedError):
                raise NotAuthorized(
                    f"{user} may not commit with the consumer group {self.group_id}: a reader's groups are named "
                    f"after it, `{user}.<anything>`; without group_id the SDK takes one so") from exc
            raise

    async def _prime_dedup(self) -> None:
        """Remember the event ids just before the committed position (read with a group-less consumer)."""
        assert self._consumer is not None
        tps = [TopicPartition(t, p) for t in self.topics for p in self._consumer.partitions_for_topic(t) or ()]
        if not tps or self.dedup_window <= 0:
            return
        committed = {tp: await self._consumer.committed(tp) for tp in tps}
        todo = {tp: end for tp, end in committed.items() if end}
        if not todo:  # a new group has seen nothing yet
            return
        per_part = max(1, self.dedup_window // len(tps))
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **kafka_options(),
                                  group_id=None, enable_auto_commit=False)
        await start_client(reader)
        try:
            reader.assign(list(todo))
            for tp, end in todo.items():
                reader.seek(tp, max(0, end - per_part))
            while todo:
                batches = await reader.getmany(*todo, timeout_ms=1000)
                if not batches:
                    break
                for tp, recs in batches.items():
                    for r in recs:
                        if r.offset < todo[tp]:
                            self._remember(self._event_id(r.value))
                    if recs and recs[-1].offset >= todo[tp] - 1:
                        del todo[tp]
        finally:
            await reader.stop()

    def _event_id(self, value: bytes | None) -> str | None:
        try:
            return self.codec.decode(value or b"", self.schema).record["event_id"]
        except CodecError:
            return None

    def _remember(self, event_id: str | None) -> None:
        if event_id is None:
            return
        self.seen[event_id] = None
        if len(self.seen) > self.dedup_window:
            self.seen.popitem(last=False)

    async def commit(self) -> None:
        if self._pending and self._consumer is not None and self.commits:
            try:
                await self._consumer.commit(dict(self._pending))
            except CommitFailedError as exc:  # the group rebalanced: the new owner reads these again
                log.warning("commit of %s not accepted (%s); records since the last commit come again and are "
                            "dropped as duplicates where this reader has seen them", ", ".join(self.topics), exc)
            self._pending.clear()
        self._uncommitted = 0

    async def stop(self) -> None:
        if self._consumer is not None:
            try:
                await self.commit()
            finally:
                await self._consumer.stop()
                self._consumer = None

    async def __aiter__(self) -> AsyncIterator[FeedRecord]:
        assert self._consumer is not None, "use `async with Feed(...)` or call start() first"
        self._last_commit = time.monotonic()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, recs in batches.items():
                for r in recs:
                    rec = self._to_record(r)
                    if rec is not None:
                        if rec.event_id in self.seen:
                            self.duplicates_dropped += 1
                        else:
                            self._remember(rec.event_id)
                            yield rec  # processed once the caller asks for the next one
                    self._pending[tp] = r.offset + 1
                    self._uncommitted += 1
            if self._uncommitted >= self.commit_every or (
                self._pending and time.monotonic() - self._last_commit >= self.commit_interval
            ):
                await self.commit()
                self._last_commit = time.monotonic()

    def _to_record(self, r) -> FeedRecord | None:
        try:
            d = self.codec.decode(r.value or b"", self.schema).record
        except CodecError as exc:
            self.unreadable += 1
            log.error("%s[%s]@%s unreadable, skipped: %s", r.topic, r.partition, r.offset, exc.reason)
            return None
        return self._make(d, r)

    @staticmethod
    def _make(d: dict, r) -> FeedRecord:
        return FeedRecord(**{**d, "flags": tuple(d["flags"]), "case_ids": tuple(d["case_ids"])},
                          partition=r.partition, offset=r.offset)
