"""The delivery agent: decode a publication, hold it against the catalog (one source, valid
subject, catalogued items), watch for duplicate collection, record it as accepted, and deliver
to each authorized department exactly its granted scope; refuse anything else, with its reason.

Deliveries are keyed by subject, so the per-subject memory of who published what is
partition-local (a faust table with the same partitioning as the deliveries topic).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ops import metrics
from schemas.errors import CodecError
from streams.agentstate import AgentState
from streams.app import (
    ACCEPTED_NAME,
    CODEC,
    DEPARTMENTS,
    FEED_NAMES,
    PREFIX,
    VIEWS,
    app,
    catalog,
    deliveries_topic,
    grants,
    grants_view,
    produce,
    subscriptions,
)
from streams.exchange import (
    alert_id,
    check_against_catalog,
    check_delivery,
    duplicate_findings,
    feed_records,
    remember_sources,
)
from streams.identifiers import subject_problem
from streams.rejects import send_internal_error, send_reject
from streams.sharing import routes
from topics import registry

log = logging.getLogger("govbus.deliveries")
ZONE = ZoneInfo("Asia/Shanghai")
DELIVERY = "govbus.exchange.DataDelivery"
FEED = "govbus.exchange.FeedDelivery"
ALERT = "govbus.ops.Alert"

ALERTS_NAME = registry.name_of(registry.ALERTS, PREFIX)
subject_sources = AgentState(app, "subject_sources", registry.name_of(registry.SUBJECT_SOURCES, PREFIX), (),
                             partitions=registry.DELIVERIES.partitions)


def receives(department: str, resource_code: str) -> bool:
    return department in subscriptions.of(resource_code) or grants.receives(department, resource_code)


async def _alert(kind: str, rule_ids, record: dict, now: datetime, *, source: str | None, items, message: str,
                 aid: str) -> None:
    rec = {"event_id": f"{aid}:{record['subject_id']}", "alert_id": aid, "occurred_at": now, "kind": kind,
           "rule_ids": list(rule_ids), "department": record["publisher"], "source_department": source,
           "system_code": record.get("system_code"), "resource_code": record["resource_code"], "items": list(items),
           "subject_id": record["subject_id"], "message": message}
    metrics.ALERTS.labels(kind).inc()
    await produce(ALERTS_NAME, aid.encode(), CODEC.encode(ALERT, rec))


@app.agent(deliveries_topic)
async def process_deliveries(stream):
    for view in VIEWS:
        await view.wait_ready()
    async for event in stream.events():
        msg = event.message
        now = datetime.now(UTC)
        try:
            record = CODEC.decode(msg.value or b"", DELIVERY).record
        except CodecError as exc:
            await send_reject(msg, exc.code, exc.reason, now)
            continue
        try:
            await _deliver(msg, record, now)
        except Exception as exc:  # a fault of the bus must not stop the stream; the input is kept
            await send_internal_error(msg, exc, now, record)


async def _deliver(msg, record: dict, now: datetime) -> None:
    entry = catalog.entries.get(record["resource_code"])
    refusal = check_delivery(record, DEPARTMENTS) or check_against_catalog(record, entry, subject_problem)
    if refusal is not None:
        await send_reject(msg, refusal.code, refusal.reason, now, record, refusal.rule_ids)
        if refusal.code == "one_source_violation":
            await _alert("one_source_violation", refusal.rule_ids, record, now,
                         source=entry["entry"]["provider"], items=sorted(record["items"]),
                         message=refusal.reason,
                         aid=f"one_source_violation:{record['publisher']}:{record['resource_code']}")
        return

    key = record["subject_id"].encode()
    sources = catalog.sources()
    memory = subject_sources.get(record["subject_id"]) or {}
    for f in duplicate_findings(record, entry, sources, memory, receives):
        what = "passed on data it received from" if f.kind == "republication" else "collected again what is"
        await _alert(
            f.kind, f.rule_ids, record, now, source=f.source_department, items=f.items,
            aid=alert_id(f, record["publisher"], record.get("system_code"), record["resource_code"]),
            message=(f"{record['publisher']} (system {record.get('system_code') or 'unnamed'}) {what} "
                     f"{f.source_department}'s {f.source_resource}: {', '.join(f.items)}"),
        )
    if remember_sources(record, entry, sources, memory):
        subject_sources.put(record["subject_id"], memory)

    await produce(ACCEPTED_NAME, key, CODEC.encode(DELIVERY, record))
    metrics.accepted(record["publisher"]).inc()
    # a revocation acknowledged before this publication was made applies to it
    await grants_view.ensure_fresh_since(msg.timestamp)
    today = now.astimezone(ZONE).date()
    ways = routes(record["publisher"], record["subject_id"], entry, subscriptions.of(record["resource_code"]),
                  grants.of(record["resource_code"]), today)
    for fed in feed_records(record, ways, now):
        await produce(FEED_NAMES[fed["subscriber"]], key, CODEC.encode(FEED, fed))
        metrics.fed(fed["subscriber"]).inc()
    metrics.LAG.observe(max(0.0, (now - record["occurred_at"]).total_seconds()))
