"""The delivery agent: decode a publication, check it, record it as accepted, forward it to
the feed of every department that receives it; refuse anything else to the rejects topic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ops import metrics
from schemas.errors import CodecError
from streams.app import (
    CODEC,
    DEPARTMENTS,
    accepted_topic,
    app,
    deliveries_topic,
    feed_topic,
    rejects_topic,
    subscription_view,
    subscriptions,
)
from streams.exchange import check_delivery, reject_record, route

log = logging.getLogger("govbus.deliveries")
DELIVERY = "govbus.exchange.DataDelivery"
FEED = "govbus.exchange.FeedDelivery"
REJECT = "govbus.ops.Reject"


async def _reject(msg, code: str, reason: str, now: datetime, record: dict | None = None, rule_ids=()) -> None:
    metrics.REJECTED.labels(code).inc()
    rec = reject_record(
        source_topic=msg.topic, partition=msg.partition, offset=msg.offset, raw=msg.value or b"",
        code=code, reason=reason, now=now,
        publisher=record.get("publisher") if record else None,
        event_id=record.get("event_id") if record else None, rule_ids=rule_ids,
    )
    await rejects_topic.send(key=rec["reject_id"].encode(), value=CODEC.encode(REJECT, rec))
    log.info("rejected %s:%s:%s (%s): %s", msg.topic, msg.partition, msg.offset, code, reason)


@app.agent(deliveries_topic)
async def process_deliveries(stream):
    await subscription_view.wait_ready()
    async for event in stream.events():
        msg = event.message
        now = datetime.now(UTC)
        try:
            record = CODEC.decode(msg.value or b"", DELIVERY).record
        except CodecError as exc:
            await _reject(msg, exc.code, exc.reason, now)
            continue
        refusal = check_delivery(record, DEPARTMENTS)
        if refusal is not None:
            await _reject(msg, refusal.code, refusal.reason, now, record, refusal.rule_ids)
            continue
        key = record["subject_id"].encode()
        await accepted_topic.send(key=key, value=CODEC.encode(DELIVERY, record))
        metrics.ACCEPTED.labels(record["publisher"]).inc()
        for fed in route(record, subscriptions.of(record["resource_code"]), now):
            await feed_topic(fed["subscriber"]).send(key=key, value=CODEC.encode(FEED, fed))
            metrics.FED.labels(fed["subscriber"]).inc()
        metrics.LAG.observe(max(0.0, (now - record["occurred_at"]).total_seconds()))
