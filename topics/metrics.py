"""Every metric govbus exports, named by Prometheus conventions; each process serves the ones it updates."""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# ---------------------------------------------------------------- flow
RECORDS_IN = Counter("govbus_records_in_total", "Records read, by process and topic (without the deployment prefix)",
                     ["process", "topic"])
RECORDS_OUT = Counter("govbus_records_out_total", "Records written, by process and topic (feeds as govbus.feed)",
                      ["process", "topic"])
ACCEPTED = Counter("govbus_deliveries_accepted_total", "Publications accepted into the exchange", ["publisher"])
REJECTED = Counter("govbus_rejects_total", "Inputs refused, by code", ["code"])
FED = Counter("govbus_feed_deliveries_total", "Records delivered to department feeds, by department and resource",
              ["subscriber", "resource"])
LAG = Histogram(
    "govbus_delivery_latency_seconds", "From publication to routing",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SECONDS = Histogram(
    "govbus_batch_processing_seconds", "Time to judge one polled batch, by process",
    ["process"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge("govbus_consumer_lag_records",
                     "Records not yet consumed by a process's consumer group, by topic and partition",
                     ["group", "topic", "partition"])
ALERTS = Counter("govbus_alerts_total",
                 "Alerts raised for the authority, by kind (duplicate_collection, one_source_violation, ...)",
                 ["kind"])

# ---------------------------------------------------------------- deadlines
DEADLINES_OPEN = Gauge("govbus_deadlines_open", "Open statutory deadlines, by process and party",
                       ["process", "party"])
DEADLINE_NOTICES = Counter("govbus_deadline_notices_total",
                           "Deadline notices sent (started, reminder, breach, closed, ...), by kind and process",
                           ["kind", "process"])

# ---------------------------------------------------------------- faust agents
# faust's own Prometheus sensor (faust.sensors.prometheus), registered by the worker (streams/app.py)
# with this prefix: govbus_faust_messages_received_total, _total_events_per_stream_total{stream},
# _table_operations_total{table,operation}, _topic_messages_sent_total{topic}, _events_runtime_ms,
# _producer_send_latency, _consumer_commit_latency, _topic_partition_end_offset{topic,partition},
# _topic_partition_offset_commited{topic,partition}, _total_rebalances, _assignment_operations_total, ...
# (latencies in milliseconds, topics by their full names).
FAUST_PREFIX = "govbus_faust"

# ---------------------------------------------------------------- sinks
LEDGER_ROWS = Counter("govbus_ledger_rows_total", "Rows written to the ledger", ["table"])
LEDGER_RETRIES = Counter("govbus_ledger_retries_total", "Ledger batches retried after a database outage")
SINK_LAST_WRITE = Gauge("govbus_sink_last_write_timestamp_seconds",
                        "Unix time of the sink's last successful write", ["sink"])
SINK_QUARANTINED = Counter("govbus_sink_quarantined_total",
                           "Records the store refused and the sink set aside in quarantine", ["sink"])
SINK_QUARANTINE_SIZE = Gauge("govbus_sink_quarantine_records",
                             "Records in quarantine now, not yet replayed", ["sink"])

# ---------------------------------------------------------------- processes
STEP_FAILURES = Counter("govbus_step_failures_total",
                        "Steps a running process failed and does again from its last commit (a transaction of the "
                        "deadline service, a batch of the delivery stream), by process", ["process"])
STEP_FAILING = Gauge("govbus_step_failing", "1 while a running process's last step failed, 0 once one succeeds",
                     ["process"])
PROCESS_UP = Gauge("govbus_process_up", "1 while a supervised process is running, 0 while it is down",
                   ["process"])
PROCESS_RESTARTS = Counter("govbus_process_restarts_total", "Restarts of a supervised process after it exited",
                           ["process"])
PROCESS_STARTED = Gauge("govbus_process_start_time_seconds", "Unix time a supervised process was last started",
                        ["process"])


# the hot path asks for the same few label children over and over
@lru_cache(maxsize=4096)
def fed(subscriber: str, resource: str):
    return FED.labels(subscriber, resource)


@lru_cache(maxsize=1024)
def accepted(publisher: str):
    return ACCEPTED.labels(publisher)


def observe_all(histogram: Histogram, amounts: Iterable[float]) -> None:
    """`histogram.observe(a)` for each amount, with each bucket and the sum added to once: a batch's
    thousand observations cost a thousand bisections in C, not a thousand loops over the buckets and
    locks. (prometheus_client keeps a child's buckets uncumulated, one per upper bound, as observe() fills
    them; tests/unit/test_metrics.py holds the samples equal.)"""
    bounds = histogram._upper_bounds  # noqa: SLF001
    counts = [0] * len(bounds)
    total = 0.0
    for a in amounts:
        counts[bisect_left(bounds, a)] += 1
        total += a
    if not any(counts):
        return
    histogram._sum.inc(total)  # noqa: SLF001
    for bucket, n in zip(histogram._buckets, counts, strict=True):  # noqa: SLF001
        if n:
            bucket.inc(n)


def serve(port: int, process: str) -> None:
    """Serve this process's metrics on 127.0.0.1:port (0: not at all)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
        logging.getLogger("govbus").info("%s metrics on http://127.0.0.1:%s/metrics", process, port)


async def observe_lag(consumer, group: str, label) -> None:
    """Set the lag gauge of every partition an aiokafka consumer holds: the broker's end offset less
    the consumer's position (partitions not yet fetched from are left out); `label` names the topic."""
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        position = await consumer.position(tp)
        CONSUMER_LAG.labels(group, label(tp.topic), str(tp.partition)).set(max(0, end - position))
