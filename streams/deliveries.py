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
    subscription_view,
    subscriptions,
)
from streams.exchange import check_delivery, route
from streams.rejects import send_reject

log = logging.getLogger("govbus.deliveries")
DELIVERY = "govbus.exchange.DataDelivery"
FEED = "govbus.exchange.FeedDelivery"


@app.agent(deliveries_topic)
async def process_deliveries(stream):
    await subscription_view.wait_ready()
    async for event in stream.events():
        msg = event.message
        now = datetime.now(UTC)
        try:
            record = CODEC.decode(msg.value or b"", DELIVERY).record
        except CodecError as exc:
            await send_reject(msg, exc.code, exc.reason, now)
            continue
        refusal = check_delivery(record, DEPARTMENTS)
        if refusal is not None:
            await send_reject(msg, refusal.code, refusal.reason, now, record, refusal.rule_ids)
            continue
        key = record["subject_id"].encode()
        await accepted_topic.send(key=key, value=CODEC.encode(DELIVERY, record))
        metrics.ACCEPTED.labels(record["publisher"]).inc()
        for fed in route(record, subscriptions.of(record["resource_code"]), now):
            await feed_topic(fed["subscriber"]).send(key=key, value=CODEC.encode(FEED, fed))
            metrics.FED.labels(fed["subscriber"]).inc()
        metrics.LAG.observe(max(0.0, (now - record["occurred_at"]).total_seconds()))
