"""The durable deadline service: the engine of streams/rules/deadlines.py behind Kafka, one transaction per
step, so a restart neither misses nor repeats a notice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from schemas.codec import default_codec
from schemas.errors import CodecError
from streams.rules.deadlines import DeadlineEngine, DeadlineState, Notice
from streams.rules.exchange import reject_record
from streams.rules.refusals import Refusal
from streams.rules.workcalendar import WorkCalendar, publish_event
from topics import metrics, registry
from topics.departments import load as load_departments
from topics.settings import Settings, kafka_options
from topics.views import CompactedView, read_to_end

log = logging.getLogger("govbus.deadlines")
COMMAND = "govbus.deadlines.DeadlineCommand"
STATE = "govbus.deadlines.DeadlineState"
NOTICE = "govbus.deadlines.Notice"
PROCESS = "deadlines"  # the bus process, as the flow metrics label it


def wall_clock() -> datetime:
    return datetime.now(UTC)


def file_clock(path: str) -> Callable[[], datetime]:
    """A clock read from a file holding an ISO datetime: drills and tests move time by writing it."""

    def now() -> datetime:
        return datetime.fromisoformat(Path(path).read_text().strip())

    return now


def state_record(s: DeadlineState) -> dict:
    return {
        "deadline_id": s.deadline_id, "case_type": s.case_type, "case_id": s.case_id, "party": s.party,
        "received_on": s.received_on.isoformat(), "due_on": s.due_on.isoformat(), "provisional": s.provisional,
        "remind_on": s.remind_on.isoformat(), "reminded": s.reminded, "breached": s.breached, "closed": s.closed,
        "extended_by": s.extended_by, "extension_approved_by": s.extension_approved_by, "version": s.version,
        "extension_event_id": s.extension_event_id,
    }


def state_from_record(r: dict) -> DeadlineState:
    return DeadlineState(**{**r, **{k: date.fromisoformat(r[k]) for k in ("received_on", "due_on", "remind_on")}})


def notice_record(n: Notice) -> dict:
    return {
        "notice_id": n.notice_id, "occurred_at": n.at, "kind": n.kind, "deadline_id": n.deadline_id,
        "case_type": n.case_type, "case_id": n.case_id, "party": n.party, "due_on": n.due_on.isoformat(),
        "provisional": n.provisional, "rule_id": n.rule_id, "message": n.message,
    }


def acted_at(timestamp_ms: int, now: datetime) -> datetime:
    """When a command is judged: when it was written (its record's timestamp), unless the clock says earlier. An
    extension or answer written in time stays in time when the service reads it late (after a restart, say)."""
    if timestamp_ms <= 0:
        return now
    return min(now, datetime.fromtimestamp(timestamp_ms / 1000, UTC))


class DeadlineService:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = wall_clock,
                 tick_interval: float = 1.0):
        self.settings = settings
        self.clock = clock
        self.tick_interval = tick_interval
        self.codec = default_codec()
        p = settings.topic_prefix
        self.commands_topic = registry.name_of(registry.DEADLINE_COMMANDS, p)
        self.states_topic = registry.name_of(registry.DEADLINES, p)
        self.notices_topic = registry.name_of(registry.NOTICES, p)
        self.rejects_topic = registry.name_of(registry.REJECTS, p)
        self.calendar = WorkCalendar()
        self.engine = DeadlineEngine(self.calendar, {c: d.head for c, d in load_departments().items()})
        self._calendar_changed = False
        self._active = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.calendar_view = CompactedView(settings.bootstrap, registry.name_of(registry.CALENDAR, p),
                                           self._apply_calendar)
        self.group = f"{p}govbus-deadlines"
        # open deadlines by (case type, party), kept up to date from the commands of each step:
        # counting the engine's states afresh would cost a pass over every open deadline a step
        self._open: Counter[tuple[str, str]] = Counter()
        self._shown: set[tuple[str, str]] = set()  # the gauge's children now exported

    def _apply_calendar(self, key: bytes | None, value: bytes | None) -> None:
        if value is not None and publish_event(self.calendar, self.codec, value):
            self._calendar_changed = True

    async def start(self) -> None:
        await self.calendar_view.start()
        await self.calendar_view.wait_ready()
        self._calendar_changed = False
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, **kafka_options(self.settings),
            acks="all", enable_idempotence=True,
            transactional_id=f"{self.settings.topic_prefix}govbus-deadlines",
        )
        await self.producer.start()  # fences any earlier producer with the same transactional id
        service = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                service._active.clear()
                service._withdraw_metrics(revoked)  # the new owner reports them now

            async def on_partitions_assigned(self, assigned):
                if assigned:
                    await service._load_states()  # another member may have moved deadlines meanwhile
                    service._active.set()

        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, **kafka_options(self.settings), group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
        )
        await self.consumer.start()
        self.consumer.subscribe([self.commands_topic], listener=Listener())

    async def _load_states(self) -> None:
        engine = DeadlineEngine(self.calendar, self.engine.heads, self.engine.remind_before)
        async for recs in read_to_end(self.settings.bootstrap, self.states_topic):
            for r in recs:
                if r.value is not None:
                    engine.load(state_from_record(self.codec.decode(r.value, STATE).record))
        self.engine = engine
        self._open = Counter((st.case_type, st.party) for st in engine.states.values() if not st.closed)
        self._show_open()
        log.info("deadline service active: %d open deadlines", engine.open_count())

    async def stop(self) -> None:
        if self.consumer:
            await self.consumer.stop()
        if self.producer:
            await self.producer.stop()
        await self.calendar_view.stop()

    def _apply(self, rec, now: datetime) -> list[Notice]:
        action = rec["action"]
        if action == "start":
            return self.engine.start(rec["deadline_id"], rec["case_type"], rec["case_id"], rec["party"],
                                     date.fromisoformat(rec["received_on"]), now)
        if action == "answer":
            return self.engine.answer(rec["deadline_id"], now)
        if action == "extend":
            return self.engine.extend(rec["deadline_id"], rec["extension_days"] or 0, rec["approved_by"] or "", now,
                                      actor=rec["actor"], event_id=rec["event_id"])
        raise Refusal(f"action {action!r} is not start, answer or extend")

    async def step(self, max_records: int = 500) -> list[Notice]:
        """Consume what commands there are, tick the clock; everything in one transaction."""
        assert self.consumer is not None and self.producer is not None
        if not self._active.is_set():  # joining the group or loading states
            try:
                await asyncio.wait_for(self._active.wait(), self.tick_interval)
            except TimeoutError:
                pass
        batches = await self.consumer.getmany(timeout_ms=int(self.tick_interval * 1000), max_records=max_records)
        if not self._active.is_set():
            # fetched before the states were loaded: put the records back for the active step
            for tp, recs in batches.items():
                if recs:
                    self.consumer.seek(tp, recs[0].offset)
            return []
        now = self.clock()
        notices: list[Notice] = []
        rejects: list[dict] = []
        was_open: dict[str, tuple[str, str] | None] = {}  # before this step, of each deadline commanded
        for recs in batches.values():
            for r in recs:
                try:
                    rec = self.codec.decode(r.value or b"", COMMAND).record
                    if rec["deadline_id"] not in was_open:
                        was_open[rec["deadline_id"]] = self._open_key(rec["deadline_id"])
                    notices += self._apply(rec, acted_at(r.timestamp, now))
                except CodecError as exc:
                    rejects.append(self._reject(r, exc.code, exc.reason, now))
                except (Refusal, KeyError, ValueError) as exc:
                    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                    rejects.append(self._reject(r, "refused", reason, now, getattr(exc, "rule_ids", ())))
                    if isinstance(exc, Refusal):  # the party hears of it too: it may not read the rejects
                        notices += self.engine.refused(rec["deadline_id"], rec["actor"], rec["action"], exc, now,
                                                       rec["event_id"])
        if self._calendar_changed:
            self._calendar_changed = False
            notices += self.engine.recompute_provisional(now)
        notices += self.engine.tick(now)
        changed = self.engine.changed()
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
        if not (notices or changed or rejects or offsets):
            await self._observe_lag()
            return []
        async with self.producer.transaction():
            for s in changed:
                await self.producer.send(self.states_topic, key=s.deadline_id.encode(),
                                         value=self.codec.encode(STATE, state_record(s)))
            for n in notices:
                await self.producer.send(self.notices_topic, key=n.deadline_id.encode(),
                                         value=self.codec.encode(NOTICE, notice_record(n)))
            for rej in rejects:
                await self.producer.send(self.rejects_topic, key=rej["reject_id"].encode(),
                                         value=self.codec.encode("govbus.ops.Reject", rej))
            if offsets:
                await self.producer.send_offsets_to_transaction(offsets, self.group)
        # only now did it happen: an aborted step is done again and must not be counted twice
        self._count(batches, changed, notices, rejects, was_open)
        await self._observe_lag()
        for n in notices:
            log.info("%s %s: %s", n.kind, n.deadline_id, n.message)
        return notices

    # ------------------------------------------------------------------ metrics

    def _open_key(self, deadline_id: str) -> tuple[str, str] | None:
        s = self.engine.states.get(deadline_id)
        return None if s is None or s.closed else (s.case_type, s.party)

    def _count(self, batches, changed: list[DeadlineState], notices: list[Notice], rejects: list[dict],
               was_open: dict[str, tuple[str, str] | None]) -> None:
        metrics.RECORDS_IN.labels(PROCESS, registry.DEADLINE_COMMANDS.name).inc(
            sum(len(recs) for recs in batches.values()))
        for spec, n in ((registry.DEADLINES, len(changed)), (registry.NOTICES, len(notices)),
                        (registry.REJECTS, len(rejects))):
            if n:
                metrics.RECORDS_OUT.labels(PROCESS, spec.name).inc(n)
        for n in notices:
            metrics.DEADLINE_NOTICES.labels(n.kind, n.case_type).inc()
        for rej in rejects:
            metrics.REJECTED.labels(rej["code"]).inc()
        # only commands open or close a deadline; reminders, breaches and recounts leave it open
        for deadline_id, before in was_open.items():
            after = self._open_key(deadline_id)
            if before != after:
                if before:
                    self._open[before] -= 1
                if after:
                    self._open[after] += 1
        self._show_open()

    def _show_open(self) -> None:
        for key in [k for k, n in self._open.items() if n <= 0]:
            del self._open[key]
        for key, n in self._open.items():
            metrics.DEADLINES_OPEN.labels(*key).set(n)
        for key in self._shown - self._open.keys():
            metrics.DEADLINES_OPEN.remove(*key)  # none open any more: no series, as after a restart
        self._shown = set(self._open)

    async def _observe_lag(self) -> None:
        assert self.consumer is not None
        await metrics.observe_lag(self.consumer, self.group,
                                  lambda topic: registry.logical_name(topic, self.settings.topic_prefix))

    def _withdraw_metrics(self, revoked) -> None:
        for tp in revoked:
            metrics.CONSUMER_LAG.remove(self.group, registry.logical_name(tp.topic, self.settings.topic_prefix),
                                        str(tp.partition))
        self._open.clear()
        self._show_open()

    def _reject(self, r, code: str, reason: str, now: datetime, rule_ids=()) -> dict:
        log.warning("deadline command refused at %s:%s: %s", r.partition, r.offset, reason)
        return reject_record(source_topic=r.topic, partition=r.partition, offset=r.offset, raw=r.value or b"",
                             code=code, reason=reason, now=now, rule_ids=rule_ids)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
                metrics.STEP_FAILING.labels(PROCESS).set(0)
            except Exception:
                # nothing of the failed step was committed: forget it and start again from what was
                log.exception("deadline step failed; resuming from the committed state")
                metrics.STEP_FAILURES.labels(PROCESS).inc()
                metrics.STEP_FAILING.labels(PROCESS).set(1)
                await self._recover()
                with contextlib.suppress(Exception):  # the commands waiting meanwhile show as lag
                    await self._observe_lag()
                await asyncio.sleep(1.0)

    async def _recover(self) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)
        await self._load_states()


async def run_service(settings: Settings, stop: asyncio.Event | None = None) -> None:
    clock_file = os.environ.get("GOVBUS_CLOCK_FILE")
    svc = DeadlineService(settings, clock=file_clock(clock_file) if clock_file else wall_clock,
                          tick_interval=float(os.environ.get("GOVBUS_TICK_SECONDS", "1.0")))
    await svc.start()
    try:
        await svc.run(stop or asyncio.Event())
    finally:
        await svc.stop()
