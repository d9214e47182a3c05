"""An agent's state: a faust table of JSON values, with an outbox that makes replays harmless
(docs/architecture.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import faust

ZONE = ZoneInfo("Asia/Shanghai")
Handler = Callable[[dict, date, datetime], Awaitable[None]]


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    raise TypeError(type(v).__name__)


class AgentState:
    def __init__(self, app: faust.App, name: str, changelog: str, outputs: Iterable[faust.TopicT],
                 partitions: int = 1):
        self.table = app.Table(
            name, default=None, partitions=partitions, key_type=bytes, value_type=bytes,
            # acks=False as faust declares the changelogs it names itself: no stream reads a changelog,
            # and an acking topic nobody consumes is what faust's stall check reports as a stream
            # that never started processing
            changelog_topic=app.topic(changelog, partitions=partitions, key_serializer="raw", acks=False,
                                      value_serializer="raw", key_type=bytes, value_type=bytes),
        )
        self.topics = {t.get_topic_name(): t for t in outputs}
        self.outbox: list[tuple[str, bytes, bytes]] = []

    def get(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        return None if raw is None else json.loads(raw)

    def put(self, key: str, value: Any) -> None:
        self.table[key.encode()] = json.dumps(value, ensure_ascii=False, default=_json_default).encode()

    def emit(self, topic: faust.TopicT, key: bytes, value: bytes | None) -> None:  # None: a tombstone
        self.outbox.append((topic.get_topic_name(), key, value))

    async def handle(self, event_id: str, handler: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self.get(f"done:{event_id}"):
            return
        stored = self.get(f"out:{event_id}")
        if stored is None:
            self.outbox.clear()
            await handler(*args)
            stored = [[n, base64.b64encode(k).decode(), None if v is None else base64.b64encode(v).decode()]
                      for n, k, v in self.outbox]
            self.put(f"out:{event_id}", stored)
            self.outbox.clear()
        for name, key, value in stored:
            await self.topics[name].send(key=base64.b64decode(key),
                                         value=None if value is None else base64.b64decode(value))
        self.put(f"done:{event_id}", 1)
        self.table.pop(f"out:{event_id}".encode(), None)


async def serve_inbox(stream, state: AgentState, handlers: Mapping[str, Handler], label: str) -> None:
    """The loop of an inbox agent: decode, dispatch by record type, refuse what does not belong.

    Each handler gets the record, the day of receipt (the bus's, in Beijing time: deadlines count
    from the day after) and the time now.
    """
    from schemas.errors import CodecError
    from streams.app import CODEC, VIEWS
    from streams.rejects import send_internal_error, send_reject
    from streams.rules.exchange import unstorable

    for view in VIEWS:
        await view.wait_ready()
    async for event in stream.events():
        msg = event.message
        now = datetime.now(UTC)
        try:
            decoded = CODEC.decode(msg.value or b"")
        except CodecError as exc:
            await send_reject(msg, exc.code, exc.reason, now)
            continue
        handler = handlers.get(decoded.name)
        if handler is None:
            await send_reject(msg, "wrong_schema", f"the {label} inbox does not take {decoded.name}", now)
            continue
        rec = decoded.record
        problem = unstorable(rec)
        if problem:
            await send_reject(msg, "unstorable_value", f"{problem}; correct it and send again", now, rec)
            continue
        received_on = datetime.fromtimestamp(msg.timestamp, ZONE).date()  # faust: seconds
        try:
            await state.handle(rec["event_id"], handler, rec, received_on, now)
        except Exception as exc:  # a fault of the bus must not stop the stream; the input is kept
            await send_internal_error(msg, exc, now, rec)
