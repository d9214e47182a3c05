"""Sending events from the CLI and the demo, waiting for what the bus answers, and reading its compacted views."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.codec import default_codec
from topics import registry
from topics.registry import TopicSpec, name_of
from topics.settings import all_delivered, kafka_options, settings, start_client

if TYPE_CHECKING:
    from streams.rules.workcalendar import WorkCalendar

CATALOG_DECISION = "govbus.catalog.CatalogDecision"
SHARE_DECISION = "govbus.sharing.ShareDecision"
CASE_EVENT = "govbus.cases.CaseEvent"
NOTICE = "govbus.deadlines.Notice"


async def send_events(spec: TopicSpec, events: list[tuple[bytes, str, dict]]) -> None:
    """Send (key, schema name, record) events to a declared topic and wait for Kafka's acknowledgement. Sent with a
    department's credentials, a command goes on the inbound topic of the department it names as acting, which the
    bus passes on to `spec` once the broker has proven who wrote it (streams.rules.commands); the operators' go to
    `spec` itself, as does what is no department's command."""
    from streams.rules.commands import acting
    from topics.departments import load

    s = settings()
    codec = default_codec()
    departments = load()
    user = s.kafka_security.username or ""
    as_department = user.startswith(s.topic_prefix) and user[len(s.topic_prefix):] in departments
    values = []
    for key, schema, rec in events:  # all encoded before any is sent: one refused, none sent
        actor = acting(schema, rec)
        topic = registry.publish_name(actor, s.topic_prefix) if as_department and actor in departments \
            else name_of(spec, s.topic_prefix)
        values.append((topic, key, codec.encode(schema, rec)))
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(s), acks="all", enable_idempotence=True)
    await start_client(producer)
    try:
        await all_delivered([await producer.send(topic, key=key, value=value) for topic, key, value in values])
    finally:
        await producer.stop()


class Answers:
    """Records that appear on a topic from now on, e.g. the decisions on what one just submitted."""

    def __init__(self, spec: TopicSpec, schema: str):
        s = settings()
        self.topic = name_of(spec, s.topic_prefix)
        self.schema = schema
        self.consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, **kafka_options(s), group_id=None,
                                         enable_auto_commit=False, isolation_level="read_committed")

    async def __aenter__(self) -> Answers:
        from topics.views import partitions_of

        await start_client(self.consumer)
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


async def submit_and_wait(events: list[tuple[bytes, str, dict]], wait: float) -> list[dict]:
    """Send catalog inputs and wait for a decision on each of them."""
    ids = {rec["event_id"] for _, _, rec in events}
    return await send_and_wait(registry.CATALOG_INBOX, events, registry.CATALOG_DECISIONS, CATALOG_DECISION,
                               lambda d: d["subject_id"] in ids,
                               lambda got: ids <= {d["subject_id"] for d in got}, wait)


async def review_and_wait(rec: dict, wait: float) -> list[dict]:
    """Send a review; the answer is the submission's new decision, or the refusal of the review."""
    keys = {rec["submission_id"], rec["event_id"]}
    return await send_and_wait(
        registry.CATALOG_INBOX, [(rec["reviewer"].encode(), "govbus.catalog.CatalogReview", rec)],
        registry.CATALOG_DECISIONS, CATALOG_DECISION,
        lambda d: d["subject_id"] in keys and d["status"] != "pending_review", bool, wait)


async def send_share(schema: str, rec: dict, request_id: str, wait: float) -> list[dict]:
    """Send one sharing event and wait for the decision on the request it concerns."""
    since = rec["occurred_at"] - timedelta(seconds=5)
    return await send_and_wait(registry.SHARING_INBOX, [(request_id.encode(), schema, rec)],
                               registry.SHARING_DECISIONS, SHARE_DECISION,
                               lambda d: d["request_id"] == request_id and d["occurred_at"] >= since, bool, wait)


async def send_case(schema: str, rec: dict, case_id: str, wait: float) -> list[dict]:
    """Send one case input and wait for what became of it."""
    return await send_and_wait(registry.CASES_INBOX, [(case_id.encode(), schema, rec)], registry.CASES, CASE_EVENT,
                               lambda e: e["source_event_id"] == rec["event_id"], bool, wait)


async def send_extension(rec: dict, wait: float) -> list[dict]:
    """Ask for a deadline's extension and wait for the deadline service's answer: its `extended` notice, or the
    `refused` one that tells the department why. A deadline is extended once only, so an `extended` notice of it
    written after the request was sent (the reader starts at the topic's end) answers it; it is dated as the
    service judged the request, which need not be the officer's clock."""
    deadline_id, refused = rec["deadline_id"], f"{rec['deadline_id']}:refused:{rec['event_id']}"
    return await send_and_wait(registry.DEADLINE_COMMANDS, [(deadline_id.encode(), "govbus.deadlines.DeadlineCommand",
                                                             rec)], registry.NOTICES, NOTICE,
                               lambda n: n["notice_id"] == refused or (
                                   n["deadline_id"] == deadline_id and n["kind"] == "extended"), bool, wait)


async def case_events(bootstrap: str, prefix: str, timeout: float = 10.0) -> list[dict]:
    """Every event of the cases topic, oldest first."""
    from topics.views import read_to_end

    codec = default_codec()
    out = []
    async for recs in read_to_end(bootstrap, name_of(registry.CASES, prefix), timeout=timeout):
        out += [codec.decode(r.value, CASE_EVENT).record for r in recs if r.value is not None]
    return out


async def subscribe(department: str, resource: str, active: bool) -> None:
    """Subscribe `department` to the feed of `resource` (or, `active` false, end the subscription)."""
    from ops.events import subscription

    await send_events(registry.SUBSCRIPTIONS, [(f"{resource}|{department}".encode(), "govbus.exchange.Subscription",
                                                subscription(department, resource, active))])


async def catalog_now(timeout: float = 10.0) -> dict[str, dict]:
    """The approved city catalog as its topic holds it now (every department may read it): code -> entry."""
    from topics.views import snapshot

    s = settings()
    codec = default_codec()
    latest = await snapshot(s.bootstrap, name_of(registry.CATALOG, s.topic_prefix), timeout=timeout)
    return {key.decode(): codec.decode(value).record for key, value in latest.items()}


async def published_calendar(timeout: float = 5.0) -> WorkCalendar:
    """The working-day calendar: the built-in years and every year published on the calendar topic."""
    from streams.rules.workcalendar import WorkCalendar, publish_event
    from topics.views import snapshot

    s = settings()
    published = await snapshot(s.bootstrap, name_of(registry.CALENDAR, s.topic_prefix), timeout=timeout)
    cal = WorkCalendar()
    codec = default_codec()
    for value in published.values():
        publish_event(cal, codec, value)
    return cal


async def deadline_states(bootstrap: str, prefix: str, timeout: float = 10.0) -> list[dict]:
    """Every deadline, open or closed, as the deadline service last wrote it to the deadline state topic."""
    from topics.views import snapshot

    codec = default_codec()
    return [codec.decode(v, "govbus.deadlines.DeadlineState").record
            for v in (await snapshot(bootstrap, name_of(registry.DEADLINES, prefix), timeout=timeout)).values()]
