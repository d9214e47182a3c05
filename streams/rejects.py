"""Refusing an input: the record on the rejects topic, with the input's position, bytes and reason."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from streams.app import CODEC, rejects_topic
from streams.rules.exchange import reject_record
from topics import metrics

log = logging.getLogger("govbus.rejects")


def reject_message(msg, code: str, reason: str, now: datetime, record: dict | None = None,
                   rule_ids: Iterable[str] = (), publisher_field: str = "publisher") -> tuple[bytes, bytes]:
    """The rejects-topic message (key, value) for an input refused with a reason; counted and logged."""
    metrics.REJECTED.labels(code).inc()
    rec = reject_record(
        source_topic=msg.topic, partition=msg.partition, offset=msg.offset, raw=msg.value or b"",
        code=code, reason=reason, now=now,
        publisher=record.get(publisher_field) if record else None,
        event_id=record.get("event_id") if record else None, rule_ids=rule_ids,
    )
    log.info("rejected %s:%s:%s (%s): %s", msg.topic, msg.partition, msg.offset, code, reason)
    return rec["reject_id"].encode(), CODEC.encode("govbus.ops.Reject", rec)


def internal_error_reason(exc: Exception) -> str:
    return (f"the bus failed on this input ({type(exc).__name__}: {exc}); "
            "it is kept here to be replayed once the fault is fixed")


async def send_reject(msg, code: str, reason: str, now: datetime, record: dict | None = None,
                      rule_ids: Iterable[str] = (), publisher_field: str = "publisher") -> None:
    key, value = reject_message(msg, code, reason, now, record, rule_ids, publisher_field)
    await rejects_topic.send(key=key, value=value)


async def send_internal_error(msg, exc: Exception, now: datetime, record: dict | None = None) -> None:
    """An input the bus failed on through its own fault: kept on the rejects topic, with the error,
    for an operator to replay once the fault is fixed; the stream goes on."""
    log.exception("could not process %s:%s:%s", msg.topic, msg.partition, msg.offset)
    await send_reject(msg, "internal_error", internal_error_reason(exc), now, record,
                      publisher_field="publisher" if record and "publisher" in record else "event_id")
