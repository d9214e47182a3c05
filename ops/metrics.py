"""Domain metrics for operators (Prometheus)."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Histogram

ACCEPTED = Counter("govbus_deliveries_accepted_total", "Publications accepted into the exchange", ["publisher"])
REJECTED = Counter("govbus_rejects_total", "Inputs refused, by kind", ["code"])
FED = Counter("govbus_feed_deliveries_total", "Records delivered to department feeds", ["subscriber"])
LAG = Histogram(
    "govbus_delivery_latency_seconds", "From publication to routing",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LEDGER_ROWS = Counter("govbus_ledger_rows_total", "Rows written to the ledger", ["table"])
LEDGER_RETRIES = Counter("govbus_ledger_retries_total", "Ledger batches retried after a database error")
ALERTS = Counter("govbus_alerts_total", "Alerts raised for the authority, by kind", ["kind"])


# the hot path asks for the same few label children over and over
@lru_cache(maxsize=1024)
def fed(subscriber: str):
    return FED.labels(subscriber)


@lru_cache(maxsize=1024)
def accepted(publisher: str):
    return ACCEPTED.labels(publisher)
