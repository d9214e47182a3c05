"""The delivery stream: each publication held against the catalog and delivered to every authorized
department in exactly its granted scope, or refused with its reason; a batch loop on aiokafka."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas.errors import CodecError, WrongSchema
from streams.app import (
    CODEC,
    DEPARTMENTS,
    FEED_NAMES,
    PREFIX,
    SETTINGS,
    VIEWS,
    Changes,
    app,
    case_flags,
    case_flags_view,
    catalog,
    grants,
    grants_view,
    open_grants,
    subscriptions,
)
from streams.outputs import Outputs, key_hash, lanes
from streams.rejects import internal_error_reason, reject_message
from streams.rules.cases import mark_feeds
from streams.rules.commands import COMMANDS, acting, check_command, command_key
from streams.rules.exchange import (
    alert_id,
    check_against_catalog,
    check_delivery,
    check_publisher,
    duplicate_findings,
    feed_common,
    feed_records,
    remember_sources,
    scoped_items,
)
from streams.rules.identifiers import subject_problem
from streams.rules.opening import OPEN_ATTRIBUTES, open_records
from streams.rules.sharing import Route, check_subscription, routes
from streams.subjects import SubjectMemory, encode_json
from topics import metrics, registry
from topics.fetch_sessions import use_fetch_sessions
from topics.settings import kafka_options
from topics.views import read_to_end

log = logging.getLogger("govbus.deliveries")
ZONE = ZoneInfo("Asia/Shanghai")
DELIVERY = "govbus.exchange.DataDelivery"
FEED = "govbus.exchange.FeedDelivery"
ALERT = "govbus.ops.Alert"
ALERT_KINDS = ("one_source_violation", "duplicate_collection", "republication", "suspected_tampering")

DELIVERIES_NAME = registry.name_of(registry.DELIVERIES, PREFIX)
# every department's own inbound topic, and the operators' one; all with the partitions of the sources memory
INBOUND = (DELIVERIES_NAME, *(registry.publish_name(code, PREFIX) for code in sorted(DEPARTMENTS)))
ACCEPTED_NAME = registry.name_of(registry.ACCEPTED, PREFIX)
ALERTS_NAME = registry.name_of(registry.ALERTS, PREFIX)
REJECTS_NAME = registry.name_of(registry.REJECTS, PREFIX)
SOURCES_NAME = registry.name_of(registry.SUBJECT_SOURCES, PREFIX)
CASES_INBOX_NAME = registry.name_of(registry.CASES_INBOX, PREFIX)
OPEN_FEED_NAME = registry.name_of(registry.OPEN_FEED, PREFIX)
OPEN = "govbus.open.OpenDelivery"
SUBSCRIPTION = "govbus.exchange.Subscription"
COMMAND_INBOXES = {schema: registry.name_of(spec, PREFIX) for schema, (spec, _) in COMMANDS.items()}
GROUP = f"{PREFIX}govbus-deliveries"
PARTITIONS = {
    ACCEPTED_NAME: registry.ACCEPTED.partitions, ALERTS_NAME: registry.ALERTS.partitions,
    REJECTS_NAME: registry.REJECTS.partitions, SOURCES_NAME: registry.SUBJECT_SOURCES.partitions,
    CASES_INBOX_NAME: registry.CASES_INBOX.partitions, OPEN_FEED_NAME: registry.OPEN_FEED.partitions,
    **{name: registry.FEED_PARTITIONS for name in FEED_NAMES.values()},
    **{registry.name_of(spec, PREFIX): spec.partitions for spec, _ in COMMANDS.values()},
}
# a feed record's fields that are its route's (FEED_LASTING) and its scope's (FEED_SCOPED); the rest: the publication's
FEED_LASTING = ("subscriber", "grant_id", "purpose")
FEED_SCOPED = ("items", "digest")
MAX_BATCH = 1000  # publications per poll: outputs of a whole batch are acknowledged before its commit
BATCH_SECONDS = metrics.BATCH_SECONDS.labels("worker")
STEP_FAILED = metrics.STEP_FAILURES.labels("worker")
STEP_FAILING = metrics.STEP_FAILING.labels("worker")
MAX_IN_FLIGHT = 4  # batches whose outputs are on their way while the next one is judged


FEED_PARTS = CODEC.fan_parts(FEED, FEED_LASTING, FEED_SCOPED)
FEED_HEADER = CODEC.header(FEED)


class Fan:
    """The feeds of a routes list (streams.rules.sharing.routes), worked out once for as long as the list is in use:
    each route's feed topic and the bytes of its own fields, and the scopes the routes are granted."""

    def __init__(self, ways: list[Route]):
        self.ways = ways
        self.granted = list(dict.fromkeys(r.items for r in ways))
        self.routes: list[tuple[str, tuple, int]] | None = None  # topic, lasting runs, index in granted
        if FEED_PARTS is not None:
            try:
                self.routes = [(FEED_NAMES[r.department], FEED_PARTS.lasting((r.department, r.grant_id, r.purpose)),
                                self.granted.index(r.items)) for r in ways]
            except Exception:  # noqa: BLE001  (records() encodes each whole, and explains)
                self.routes = None

    def records(self, record: dict, now: datetime) -> list[tuple[str, bytes]]:
        """Each route's feed topic and the bytes of its feed record (streams.rules.exchange.feed_records): the
        publication's fields encoded once, each scope's once, each route's own once per routes list."""
        if self.routes is not None:
            try:
                common = FEED_PARTS.common(FEED_HEADER, feed_common(record, now))
                scoped = [FEED_PARTS.scoped(scope) for scope in scoped_items(record, self.granted)]
                join = FEED_PARTS.join
                return [(topic, join(common, lasting, scoped[i])) for topic, lasting, i in self.routes]
            except Exception:  # noqa: BLE001, S110  (encode below decides, and explains)
                pass
        return [(FEED_NAMES[f["subscriber"]], CODEC.encode(FEED, f)) for f in feed_records(record, self.ways, now)]


@functools.lru_cache(maxsize=1024)
def topic_label(topic: str) -> str:
    return registry.logical_name(topic, PREFIX)


@functools.lru_cache(maxsize=1024)
def records_in(topic: str):
    return metrics.RECORDS_IN.labels("worker", topic_label(topic))


@functools.lru_cache(maxsize=1024)
def records_out(topic: str):
    return metrics.RECORDS_OUT.labels("worker", topic_label(topic))


@functools.lru_cache(maxsize=1024)
def proven_publisher(topic: str) -> str | None:
    """Who published what was read from `topic`: the department whose inbound topic it is, which the broker
    lets only that department write (None: the operators' topic, where the record's own word is taken)."""
    return registry.publisher_of(topic, PREFIX)


def receives(department: str, resource_code: str) -> bool:
    return department in subscriptions.of(resource_code) or grants.receives(department, resource_code)


class DeliveryStream(ConsumerRebalanceListener):
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self.producers: list[AIOKafkaProducer] = []
        self.memory: dict[int, SubjectMemory] = {}  # partition -> subject -> item definition -> source
        self.lock = asyncio.Lock()  # one batch judged at a time; a rebalance waits for the batches in hand
        # batches whose outputs are on their way, oldest first, each with the first offset of each of
        # its partitions; each one's task waits for its acknowledgements, then for the batch before it
        self.inflight: deque[tuple[asyncio.Task, dict[TopicPartition, int]]] = deque()
        self.acked: dict[TopicPartition, int] = {}  # offsets whose outputs are all acknowledged, not yet committed
        self.committing = asyncio.Lock()  # one commit on its way at a time; what is acknowledged meanwhile waits
        self._routes_cache: dict[tuple[str, str, date], Fan] = {}
        self._routes_seen = -1  # Changes.count the cache was filled at
        self.tally: Counter = Counter()  # metric children counted over a batch, added at its end
        self.fanned: dict[int, list] = {}  # id(fan) -> [its Fan, resource, publications fed along its routes]
        self.lags: list[float] = []  # seconds from publication to judging, observed at the batch's end
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self._lag_seen = 0.0  # monotonic time of the last lag measurement

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        for view in VIEWS:
            await view.wait_ready()
        # what is loaded by now (code, catalog, views) lives as long as the worker: keep it out of
        # the collector's full passes, and let those come less often, so a large heap of long-lived
        # objects does not stall the stream for a full traversal every few thousand publications
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        for kind in ALERT_KINDS:  # at zero from the start, so that the first alert is an increase
            metrics.ALERTS.labels(kind)
        self.producers = lanes(self.bootstrap, kafka_options(SETTINGS))
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, **kafka_options(SETTINGS), group_id=GROUP, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=MAX_BATCH, fetch_max_bytes=16 * 1024 * 1024,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            # partition p of every inbound topic to the same worker: the memory of partition p serves them all
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        for producer in self.producers:
            await producer.start()
        await self.consumer.start()
        use_fetch_sessions(self.consumer)  # a fetch names and returns only the partitions that moved
        self.consumer.subscribe(list(INBOUND), listener=self)
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200)
                async with self.lock:
                    if batches:
                        await self._process(batches)
                    elif (failed := await self._settle()) is not None:
                        await self._rewind(failed)
                if time.monotonic() - self._lag_seen > 1.0:
                    self._lag_seen = time.monotonic()
                    await metrics.observe_lag(self.consumer, GROUP, topic_label)
        finally:
            async with self.lock:
                await self._settle()  # what failed here is not committed: read again on the next start
            await self.consumer.stop()  # leaves the group: the others take over at once
            for producer in self.producers:
                await producer.stop()
            self.stopped.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand (sent and committed), then leave the group."""
        self.stopping.set()
        if self.consumer is not None:
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout)
            except TimeoutError:
                log.warning("delivery stream did not stop within %.0fs", timeout)

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:  # the batch in hand is sent and committed first
            if (failed := await self._settle()) is not None:
                await self._rewind(failed)
            for tp in revoked:
                self.memory.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.restore(sorted({tp.partition for tp in assigned if tp.partition not in self.memory}))
        log.info("deliveries partitions %s", sorted(self.memory))

    async def restore(self, partitions: list[int]) -> None:
        """Read the memory of these partitions from its compacted topic, to the end."""
        if not partitions:
            return
        loaded = {p: SubjectMemory() for p in partitions}
        # millions of short-lived decoded values would set off the collector's full passes again and again;
        # what is kept is bytes, which it never traverses
        collecting = gc.isenabled()
        gc.disable()
        try:
            async for recs in read_to_end(self.bootstrap, SOURCES_NAME, partitions):
                for r in recs:
                    loaded[r.partition].load(r.key, r.value)
        finally:
            if collecting:
                gc.enable()
        self.memory.update(loaded)

    # ------------------------------------------------------------------ a batch

    async def _process(self, batches: dict[TopicPartition, list]) -> None:
        # a batch fetched just before a rebalance may hold partitions this worker no longer owns:
        # their new owner processes them
        owned = self.consumer.assignment()
        missing = sorted({tp.partition for tp in owned if tp.partition not in self.memory})
        if missing:  # the restore at assignment failed (logged): once more, before anything is judged
            await self.restore(missing)
        batches = {tp: recs for tp, recs in batches.items() if tp in owned and tp.partition in self.memory}
        if not batches:
            return
        # a revocation acknowledged before a publication was made applies to it, as does a case opened
        # or closed on its datum (R-19.2, R-41.1): the views' round trips to the broker go out first, and the
        # batch is decoded while they are answered
        moment = max(r.timestamp for recs in batches.values() for r in recs) / 1000
        fresh = asyncio.gather(grants_view.ensure_fresh_since(moment), case_flags_view.ensure_fresh_since(moment))
        for _ in range(3):
            await asyncio.sleep(0)
        started = time.perf_counter()
        for tp, recs in batches.items():
            records_in(tp.topic).inc(len(recs))
        out = Outputs(self.producers, PARTITIONS)
        decoded = [(self.memory[tp.partition], msg, self._decode(msg, out)) for tp, recs in batches.items()
                   for msg in recs]
        await fresh
        now = datetime.now(UTC)  # the batch is judged, and delivered, at one moment
        today = now.astimezone(ZONE).date()
        for memory, msg, record in decoded:
            if record is not None:
                self._judge(msg, record, memory, out, now, today)
        self._count_batch()
        first = {tp: recs[0].offset for tp, recs in batches.items()}
        self._prune()
        if len(self.inflight) >= MAX_IN_FLIGHT:
            await self.inflight[0][0]
            self._prune()
        if self.inflight and self._failed():  # an earlier batch failed: it and all after it are read again
            await self._rewind_after_failure(first)
            return
        try:
            acks = await out.submit()
        except KafkaError:
            log.exception("outputs of a batch not accepted by the producer; the batch is read again")
            STEP_FAILED.inc()
            STEP_FAILING.set(1)
            await self._rewind_after_failure(first)
            return
        BATCH_SECONDS.observe(time.perf_counter() - started)
        commit = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
        before = self.inflight[-1][0] if self.inflight else None
        self.inflight.append((asyncio.create_task(self._finish(acks, commit, before, out.counts)), first))


    def _count_batch(self) -> None:
        """The batch's metrics, counted as it was judged, added at once."""
        for fan, resource, n in self.fanned.values():
            for r in fan.ways:
                self.tally[metrics.fed(r.department, resource)] += n
        self.fanned.clear()
        for counter, n in self.tally.items():
            counter.inc(n)
        self.tally.clear()
        metrics.observe_all(metrics.LAG, self.lags)
        self.lags.clear()

    async def _finish(self, acks: asyncio.Future, commit: dict[TopicPartition, int],
                      before: asyncio.Task | None, counts: dict[str, int]) -> bool:
        """True once this batch's outputs and those of every batch before it are acknowledged; its
        offsets are then committed, together with theirs, unless a newer batch will commit them."""
        try:
            await acks
            sent = True
        except KafkaError:
            log.exception("outputs of a batch not acknowledged by the broker; the batch is read again")
            STEP_FAILED.inc()
            STEP_FAILING.set(1)
            sent = False
        if before is not None and not await before:
            return False  # read again from the failed batch before it
        if not sent:
            return False
        for topic, n in counts.items():
            records_out(topic).inc(n)
        STEP_FAILING.set(0)
        self.acked.update(commit)
        if self.inflight and self.inflight[-1][0] is asyncio.current_task():
            await self._commit()
        return True

    async def _commit(self) -> None:
        """Commit what is acknowledged. While a commit is on its way, the batches acknowledged meanwhile wait for it
        and go together in the next: one request for them all, not one each."""
        async with self.committing:
            await self._commit_acked()

    async def _commit_acked(self) -> None:
        if not self.acked:
            return
        offsets, self.acked = self.acked, {}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit refused (%s): the partitions' new owner delivers these again, by the same ids", exc)
        except KafkaError:
            log.exception("commit failed: these publications are delivered again, by the same ids")

    def _prune(self) -> None:
        """Forget the oldest batches once they are acknowledged."""
        while self.inflight and self.inflight[0][0].done() and self.inflight[0][0].result():
            self.inflight.popleft()

    def _failed(self) -> bool:
        return any(task.done() and not task.result() for task, _ in self.inflight)

    async def _settle(self) -> dict[TopicPartition, int] | None:
        """Wait for every batch in flight and commit what is acknowledged; when one failed, the first
        offsets of it and of every batch after it (where each partition is to be read again), else None."""
        again: dict[TopicPartition, int] | None = None
        while self.inflight:
            task, first = self.inflight.popleft()
            if not await task and again is None:
                again = {}
            if again is not None:
                for tp, offset in first.items():
                    again.setdefault(tp, offset)
        await self._commit()
        return again

    async def _rewind_after_failure(self, first: dict[TopicPartition, int]) -> None:
        """A batch before this one failed, or this one could not be sent: read both again."""
        again = await self._settle() or {}
        for tp, offset in first.items():
            again.setdefault(tp, offset)
        await self._rewind(again)

    async def _rewind(self, first: dict[TopicPartition, int]) -> None:
        """Read these partitions again from these offsets, with the memory as the broker has it."""
        owned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in owned:
                self.consumer.seek(tp, offset)
        self.memory.clear()
        await asyncio.sleep(1.0)
        await self.restore(sorted({tp.partition for tp in owned}))

    def _decode(self, msg, out: Outputs) -> dict | None:
        """The publication `msg` carries; None for anything else (a command, passed on; what cannot be read,
        refused)."""
        try:
            return CODEC.decode(msg.value or b"", DELIVERY).record
        except WrongSchema:
            self._command(msg, out)
        except CodecError as exc:
            self._reject(out, msg, exc.code, exc.reason, datetime.now(UTC))
        return None

    def _command(self, msg, out: Outputs) -> None:
        """A department's command (streams.rules.commands), passed on to its inbox as it was sent once the
        department it names as acting is the one that sent it; else refused, and a command in another's name
        raised as tampering."""
        now = datetime.now(UTC)
        try:
            decoded = CODEC.decode(msg.value)
        except CodecError as exc:  # its header named a known schema; its body does not decode as that
            self._reject(out, msg, exc.code, exc.reason, now)
            return
        try:
            self._pass_on(msg, decoded, out, now)
        except Exception as exc:  # a fault of the bus must not stop the stream; the command is kept
            log.exception("could not pass on %s:%s:%s", msg.topic, msg.partition, msg.offset)
            self._reject(out, msg, "internal_error", internal_error_reason(exc), now)

    def _pass_on(self, msg, decoded, out: Outputs, now: datetime) -> None:
        proven = proven_publisher(msg.topic)
        refusal = check_command(decoded.name, decoded.record, proven)
        if refusal is not None:
            self._reject(out, msg, refusal.code, refusal.reason, now, rule_ids=refusal.rule_ids)
            if refusal.code == "suspected_tampering":
                actor, record = acting(decoded.name, decoded.record), decoded.record
                self._alert(out, "suspected_tampering", refusal.rule_ids, {
                    "event_id": record["event_id"], "subject_id": "", "publisher": proven, "system_code": None,
                    "resource_code": record.get("resource_code") or ""}, now, source=actor, items=(),
                    message=refusal.reason, department=proven, aid=f"suspected_tampering:{proven}:{actor}:command")
            return
        record = decoded.record
        if decoded.name == SUBSCRIPTION and record["active"]:  # only what is shared unconditionally
            refusal = check_subscription(record["resource_code"], catalog.entries.get(record["resource_code"]),
                                         record["subscriber"])
            if refusal is not None:
                self._reject(out, msg, refusal.code, refusal.reason, now, rule_ids=refusal.rule_ids)
                return
        key = command_key(decoded.name, record, msg.key)
        # stamped as it was on the department's topic: its day of receipt is when it was sent (R-26.1's deadlines)
        out.add(COMMAND_INBOXES[decoded.name], key, msg.value, hashed=key_hash(key), timestamp=msg.timestamp)

    def _judge(self, msg, record: dict, memory: SubjectMemory, out: Outputs, now: datetime, today: date) -> None:
        try:
            self._deliver(msg, record, memory, now, today, out)
        except Exception as exc:  # a fault of the bus must not stop the stream; the input is kept
            log.exception("could not process %s:%s:%s", msg.topic, msg.partition, msg.offset)
            self._reject(out, msg, "internal_error", internal_error_reason(exc), now, record)

    def _deliver(self, msg, record: dict, memory: SubjectMemory, now: datetime, today: date, out: Outputs) -> None:
        proven = proven_publisher(msg.topic)
        refusal = check_publisher(record, proven)
        if refusal is not None:
            self._reject(out, msg, refusal.code, refusal.reason, now, record, refusal.rule_ids)
            self._alert(out, "suspected_tampering", refusal.rule_ids, record, now, source=record["publisher"],
                        items=sorted(record["items"]), message=refusal.reason, department=proven,
                        aid=f"suspected_tampering:{proven}:{record['publisher']}:{record['resource_code']}")
            return
        entry = catalog.entries.get(record["resource_code"])
        refusal = check_delivery(record, DEPARTMENTS) or check_against_catalog(
            record, entry, functools.partial(subject_problem, today=today))  # born by the day the batch is judged
        if refusal is not None:
            self._reject(out, msg, refusal.code, refusal.reason, now, record, refusal.rule_ids)
            if refusal.code == "one_source_violation":
                self._alert(out, "one_source_violation", refusal.rule_ids, record, now,
                            source=entry["entry"]["provider"], items=sorted(record["items"]), message=refusal.reason,
                            aid=f"one_source_violation:{record['publisher']}:{record['resource_code']}")
            return

        subject, resource = record["subject_id"], record["resource_code"]
        key = subject.encode()
        hashed = key_hash(key)
        sources = catalog.sources()
        known = memory.get(key)
        for f in duplicate_findings(record, entry, sources, known, receives):
            what = "passed on data it received from" if f.kind == "republication" else "collected again what is"
            self._alert(
                out, f.kind, f.rule_ids, record, now, source=f.source_department, items=f.items,
                aid=alert_id(f, record["publisher"], record.get("system_code"), record["resource_code"]),
                message=(f"{record['publisher']} (system {record.get('system_code') or 'unnamed'}) {what} "
                         f"{f.source_department}'s {f.source_resource}: {', '.join(f.items)}"),
            )
        if remember_sources(record, entry, sources, known):
            memory.put(key, known)
            out.add(SOURCES_NAME, key, encode_json(known), partition=msg.partition)

        out.add(ACCEPTED_NAME, key, msg.value, hashed=hashed)  # the publication's own bytes, as validated
        self.tally[metrics.accepted(record["publisher"])] += 1
        fan = self._routes(record, entry, today)
        marks = case_flags.by_datum.get((resource, subject)) if case_flags.by_datum else None
        if marks is None:  # no case is open on this datum
            out.fan(key, hashed, fan.records(record, now))
            fanned = self.fanned.get(id(fan))
            if fanned is None or fanned[0] is not fan:
                fanned = self.fanned[id(fan)] = [fan, resource, 0]  # (a Fan outlives its batch)
            fanned[2] += 1
        else:
            feeds, corrected = mark_feeds(record, feed_records(record, fan.ways, now), marks,
                                          functools.partial(self._correction_feed, record, now))
            for case_id, recipients in corrected.items():
                self._correction_sent(out, case_id, record, recipients, now)
            for fed in feeds:
                self._fed(out, fed["subscriber"], resource, key, hashed, CODEC.encode(FEED, fed))
        if entry["entry"]["open_attribute"] in OPEN_ATTRIBUTES:
            self._open(out, record, entry, now)
        self.lags.append(max(0.0, (now - record["occurred_at"]).total_seconds()))

    def _fed(self, out: Outputs, subscriber: str, resource: str, key: bytes, hashed: int, value: bytes) -> None:
        out.add(FEED_NAMES[subscriber], key, value, hashed=hashed)
        self.tally[metrics.fed(subscriber, resource)] += 1

    def _open(self, out: Outputs, record: dict, entry: dict, now: datetime) -> None:
        """An open resource's publication as the public receives it: desensitized, with its source and retrieval
        date, on the open feed (unconditional) or on the feed of each party approved for it (conditional)."""
        provider = DEPARTMENTS[entry["entry"]["provider"]]
        key = record["resource_code"].encode()
        for party, rec in open_records(record, entry, provider.name, open_grants.of(record["resource_code"]), now):
            if party is None:
                out.add(OPEN_FEED_NAME, key, CODEC.encode(OPEN, rec))
            else:
                out.add(registry.open_party_name(party, PREFIX), key, CODEC.encode(OPEN, rec), partition=0)

    def _correction_feed(self, record: dict, now: datetime, department: str, grant_id: str) -> dict | None:
        """The correction for a department that received the old value but would not receive this publication:
        in the scope of the delivery it had, that grant's items or, under a subscription, all of them."""
        if department not in FEED_NAMES:
            return None
        if grant_id.startswith("subscription:"):
            route = Route(department, grant_id, None, None)
        else:
            grant = grants.by_resource.get(record["resource_code"], {}).get(grant_id)
            if grant is None:
                log.warning("no correction for %s of %s: its earlier delivery came under %s, which is not known",
                            department, record["event_id"], grant_id)
                return None
            route = Route(department, grant_id, grant["purpose"], tuple(grant["items"]))
        return feed_records(record, [route], now)[0]

    def _correction_sent(self, out: Outputs, case_id: str, record: dict, recipients: list[str],
                         now: datetime) -> None:
        """Tell the case agent whom the correction went to: it records them and stops owing it."""
        rec = {"event_id": f"correction:{case_id}:{record['event_id']}", "occurred_at": now, "case_id": case_id,
               "resource_code": record["resource_code"], "subject_id": record["subject_id"],
               "delivery_event_id": record["event_id"], "recipients": sorted(recipients)}
        out.add(CASES_INBOX_NAME, case_id.encode(), CODEC.encode("govbus.cases.CorrectionSent", rec))

    def _routes(self, record: dict, entry: dict, today: date) -> Fan:
        """Who receives this publication, and their feeds; the same for every subject of a resource on a day unless
        a grant of it is limited to listed subjects, so kept until the views change or the day does."""
        if self._routes_seen != Changes.count:
            self._routes_cache.clear()
            self._routes_seen = Changes.count
        key = (record["resource_code"], record["publisher"], today)
        fan = self._routes_cache.get(key)
        if fan is None:
            held = grants.of(record["resource_code"])
            fan = Fan(routes(record["publisher"], record["subject_id"], entry,
                             subscriptions.of(record["resource_code"]), held, today))
            if not any(g["subjects"] for g in held):
                self._routes_cache[key] = fan
        return fan

    def _reject(self, out: Outputs, msg, code: str, reason: str, now: datetime, record: dict | None = None,
                rule_ids: Iterable[str] = ()) -> None:
        key, value = reject_message(msg, code, reason, now, record, rule_ids)
        out.add(REJECTS_NAME, key, value)

    def _alert(self, out: Outputs, kind: str, rule_ids, record: dict, now: datetime, *, source: str | None, items,
               message: str, aid: str, department: str | None = None) -> None:
        event_id = f"{aid}:{record['subject_id']}"
        if kind == "suspected_tampering":  # each record published in another's name is an incident of its own
            event_id += f":{record['event_id']}"
        rec = {"event_id": event_id, "alert_id": aid, "occurred_at": now, "kind": kind,
               "rule_ids": list(rule_ids), "department": department or record["publisher"], "source_department": source,
               "system_code": record.get("system_code"), "resource_code": record["resource_code"],
               "items": list(items), "subject_id": record["subject_id"], "message": message}
        metrics.ALERTS.labels(kind).inc()
        out.add(ALERTS_NAME, aid.encode(), CODEC.encode(ALERT, rec))


delivery_stream = DeliveryStream(SETTINGS.bootstrap)


@app.task
async def run_delivery_stream() -> None:
    await delivery_stream.run()


@app.on_before_shutdown.connect
async def stop_delivery_stream(app, **kwargs) -> None:  # noqa: ARG001
    await delivery_stream.stop()
