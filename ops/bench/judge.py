"""The delivery stream's judging in the process alone (no Kafka, no network): what one publication costs the worker's
CPU in the rules' Python, against the least Python that makes the same output records.

    govbus bench judge [--publications 20000] [--rounds 8] [--json]

The same publications as `govbus bench pipeline` (one provider's resource, ten departments each under a directed
authorization with its own projection; every round new values for the same subjects, so that each is an update the
memory records), read from the provider's own inbound topic, the catalog and grants applied to the worker's views as
the views apply them.

- govbus: `DeliveryStream._decode` and `_judge`, as the worker calls them on a batch of 1,000, appending to record
  batches (`streams.outputs.Outputs`, aiokafka's own builders; nothing is sent).
- least Python: the same output records, byte for byte (tests/unit/test_bench_judge.py holds them equal), from the
  same primitives (the compiled Avro reader, the rules' own checks of a publication and of its subject's identity
  number, the key hash, SHA-256, the record-batch appends), written straight for this one case: every check passes,
  nothing is refused or alerted, no case is open, the memory kept as the topic's JSON.
  It is no stream anyone could run (it judges nothing it was not told would pass); it is how far the rules' code is
  from what Python costs for the same work done over the decoded record, as the rules are written, and so the most a
  rewrite of the rules' code in that form could give. (Python working on the publication's bytes, copying encoded
  fields into the feed records rather than decoding and encoding them, could go further; it is not measured here.)
- its calls alone: only the library and rule calls the least Python makes (decode, checks, key hash, eight SHA-256,
  twelve appends), none of the Python around them: a floor under any Python that makes those calls.

Rounds alternate between the three, each over the same publications; prints the best and the median microseconds
per publication of each, the ratio of the first two, and the rate one process at that cost would reach on one core.
"""

from __future__ import annotations

import gc
import hashlib
import statistics
import struct
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

import orjson
from aiokafka.producer.message_accumulator import BatchBuilder

from ops.bench.pipeline import FANOUT, PROVIDER, bench_grant, publications
from schemas.fastpath import millis, zigzag
from schemas.provenance import json_text
from streams.outputs import Outputs, key_hash
from streams.rules.exchange import value_digest

BATCH = 1000


class Msg(NamedTuple):
    """What the worker reads of a consumer record."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp: int


class Unsent:
    """What Outputs asks of a producer here: an empty record batch (aiokafka's own builder) to append to."""

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(256 * 1024, 0)


def views() -> None:
    """The bench's catalog entry and ten grants, applied to this process's views as the worker's are."""
    from ops.seeds import approved_entry
    from streams.app import CODEC, catalog, grants

    entry = approved_entry("wy-subsidy.yaml")
    catalog.apply(entry["resource_code"].encode(), CODEC.encode("govbus.catalog.CatalogEntry", entry))
    for i, dept in enumerate(FANOUT):
        g = bench_grant(i, dept)
        grants.apply(g["grant_id"].encode(), CODEC.encode("govbus.sharing.Grant", g))


def messages(n: int, edition: int) -> list[Msg]:
    """The bench's publications as the worker reads them from the provider's own inbound topic (the broker lets
    only the provider write it), each in its key's partition."""
    from streams.app import PREFIX
    from streams.deliveries import PARTITIONS, SOURCES_NAME
    from topics.registry import publish_name

    topic = publish_name(PROVIDER, PREFIX)
    stamp = int(time.time() * 1000)
    return [Msg(topic, key_hash(k) % PARTITIONS[SOURCES_NAME], i, k, v, stamp)
            for i, (k, v) in enumerate(publications(n, edition))]


def govbus(stream, batch: list[Msg], out: Outputs, now: datetime) -> None:
    """The worker's own judging of one batch (streams.deliveries.DeliveryStream._process, less the broker)."""
    from streams.deliveries import ZONE

    today = now.astimezone(ZONE).date()  # the day the batch is judged on, as the worker takes it
    decoded = [(stream.memory[m.partition], m, stream._decode(m, out)) for m in batch]  # noqa: SLF001
    for memory, m, record in decoded:
        if record is not None:
            stream._judge(m, record, memory, out, now, today)  # noqa: SLF001
    stream._count_batch()  # noqa: SLF001


class LeastPython:
    """The same output records as the worker's for the bench's publications, in as little Python as they take (see
    the module's docstring): what is the same for every publication of the provider's resource (its routes, their
    scopes, the item definitions it is the source of, the record's constant fields) worked out once, the rest
    straight-line."""

    def __init__(self) -> None:
        from streams.app import CODEC, DEPARTMENTS, FEED_NAMES, catalog, grants
        from streams.deliveries import ACCEPTED_NAME, FEED, SOURCES_NAME
        from streams.rules.exchange import check_delivery, entry_items
        from streams.rules.identifiers import subject_problem

        self.reader = CODEC.decode
        self.valid = lambda d, today: not (check_delivery(d, DEPARTMENTS) or subject_problem(d["subject_id"], today))
        self.accepted, self.sources_topic = ACCEPTED_NAME, SOURCES_NAME
        self.header = CODEC.header(FEED)
        entry = catalog.entries["WY-MZ-DB-001"]
        self.resource = entry["resource_code"]
        self.item_keys = entry_items(entry).keys  # name -> item definition, all of them the provider's own here
        self.names = entry_items(entry).names
        held = sorted(grants.of(self.resource), key=lambda g: g["grant_id"])
        self.scopes: list[frozenset[str]] = []
        self.routes: list[tuple[str, bytes, bytes, int]] = []  # topic, subscriber's bytes, grant's bytes, scope
        for g in held:
            scope = frozenset(g["items"])
            if scope not in self.scopes:
                self.scopes.append(scope)
            self.routes.append((g["grantee"], FEED_NAMES[g["grantee"]], _string(g["grantee"]),
                                _string(g["grant_id"]) + b"\x02" + _string(g["purpose"]), self.scopes.index(scope)))
        self.routes = [r[1:] for r in sorted(self.routes)]  # the worker's order: by department
        self.memory: dict[bytes, bytes] = {}  # subject -> what the sources topic holds of it

    def judge(self, batch: list[Msg], out: Outputs, now: datetime) -> None:
        from streams.deliveries import ZONE

        delivered, today = millis(now), now.astimezone(ZONE).date()
        for m in batch:
            d = self.reader(m.value, "govbus.exchange.DataDelivery").record
            items, publisher, subject, event = d["items"], d["publisher"], d["subject_id"], d["event_id"]
            if (publisher != PROVIDER or d["resource_code"] != self.resource or not self.names.issuperset(items)
                    or not self.valid(d, today)):
                raise ValueError("the least-Python path takes the bench's publications only")
            key = m.key
            hashed = key_hash(key)
            known = {k: [publisher, self.resource, value_digest(items[n])]
                     for n, k in self.item_keys.items() if n in items}
            held = orjson.dumps(known)
            if self.memory.get(key) != held:
                self.memory[key] = held
                out.add(self.sources_topic, key, held, partition=m.partition)
            out.add(self.accepted, key, m.value, hashed=hashed)
            prefix = f"[{encode_basestring(publisher)},{encode_basestring(self.resource)},{encode_basestring(event)}," \
                     f"{encode_basestring(subject)},{{"
            texts = {n: f"{encode_basestring(n)}:{json_text(v)}" for n, v in items.items()}
            entries = {n: _string(n) + _value(v) for n, v in items.items()}
            scoped = []
            for scope in self.scopes:
                taken = [n for n in items if n in scope]
                text = prefix + ",".join(texts[n] for n in sorted(taken)) + "}]"
                digest = hashlib.sha256(text.encode()).hexdigest()
                run = zigzag(len(taken)) + b"".join(entries[n] for n in taken) + b"\x00" if taken else b"\x00"
                scoped.append((run, _string(digest)))
            event_b = self.header + _string(event)
            about = (_string(publisher) + _string(self.resource) + _string(subject)
                     + (b"\x02" + _string(d["system_code"]) if d["system_code"] is not None else b"\x00"))
            times = zigzag(millis(d["occurred_at"])) + zigzag(delivered)
            for topic, subscriber, grant, s in self.routes:
                run, digest = scoped[s]
                out.add(topic, key, b"".join((event_b, subscriber, about, run, times, grant, digest, b"\x00\x00\x00")),
                        hashed=hashed)


def calls_alone(batch: list[Msg], out: Outputs, now: datetime) -> None:
    """Only the library and rule calls the least Python makes for each publication, timed without the Python
    around them: the decode, the checks of the publication and its identity number, the key hash, eight SHA-256
    digests (five scopes, three items; of the publication's bytes, as long as a canonical text) and twelve appends
    (the accepted log, the memory, ten feeds; the publication's bytes, as long as a feed record)."""
    from streams.app import CODEC, DEPARTMENTS, FEED_NAMES
    from streams.deliveries import ACCEPTED_NAME, SOURCES_NAME, ZONE
    from streams.rules.exchange import check_delivery
    from streams.rules.identifiers import subject_problem

    today = now.astimezone(ZONE).date()
    feeds = [FEED_NAMES[d] for d in FANOUT]
    sha256 = hashlib.sha256
    for m in batch:
        d = CODEC.decode(m.value, "govbus.exchange.DataDelivery").record
        check_delivery(d, DEPARTMENTS)
        subject_problem(d["subject_id"], today)
        hashed = key_hash(m.key)
        for _ in range(8):
            sha256(m.value).hexdigest()
        out.add(SOURCES_NAME, m.key, m.value, partition=m.partition)
        out.add(ACCEPTED_NAME, m.key, m.value, hashed=hashed)
        for topic in feeds:
            out.add(topic, m.key, m.value, hashed=hashed)


def _string(s: str) -> bytes:
    b = s.encode()
    return zigzag(len(b)) + b


_DOUBLE = struct.Struct("<d").pack


def _value(v: Any) -> bytes:
    """A publication item's value in the feed's union of null, string, long, double, boolean: the bench's types."""
    if type(v) is str:
        return b"\x02" + _string(v)
    if type(v) is float:
        return b"\x06" + _DOUBLE(v)
    raise ValueError("the least-Python path takes text and decimals only")


def fresh_stream():
    from streams.deliveries import PARTITIONS, SOURCES_NAME, DeliveryStream
    from streams.subjects import SubjectMemory

    stream = DeliveryStream("unused:9092")  # never started: its judging alone
    stream.memory = {p: SubjectMemory() for p in range(PARTITIONS[SOURCES_NAME])}  # as if it held every partition
    return stream


def run(n: int = 20_000, rounds: int = 8) -> dict:
    views()
    stream, least = fresh_stream(), LeastPython()
    lanes = [Unsent() for _ in range(3)]
    from streams.deliveries import PARTITIONS

    timings: dict[str, list[float]] = {"govbus": [], "least Python": [], "its calls alone": []}
    sides = {"govbus": lambda batch, out, now: govbus(stream, batch, out, now), "least Python": least.judge,
             "its calls alone": calls_alone}
    gc.collect()
    gc.freeze()  # as the worker does once its views are loaded
    try:
        for r in range(rounds + 1):  # the first round of each warms up, and is not counted
            batch = messages(n, r)
            for name, judge in sides.items():
                gc.collect()
                started = time.perf_counter()
                for i in range(0, n, BATCH):
                    judge(batch[i:i + BATCH], Outputs(lanes, PARTITIONS), datetime.now(UTC))
                if r:
                    timings[name].append((time.perf_counter() - started) / n * 1e6)
    finally:
        gc.unfreeze()
    # the machine's speed moves within minutes: each round's two sides, run one after the other, are compared
    paired = sorted(g / least for g, least in zip(timings["govbus"], timings["least Python"], strict=True))
    result: dict[str, Any] = {"publications": n, "rounds": rounds}
    print(f"{n:,} publications to 10 feeds, judged in this process alone, {rounds} alternate rounds each")
    print(f"{'per publication':34}{'best µs':>10}{'median µs':>11}{'rate /s at best':>17}")
    for name, values in timings.items():
        best, median = min(values), statistics.median(values)
        result[name] = {"best_us": round(best, 1), "median_us": round(median, 1), "rate_at_best": round(1e6 / best)}
        print(f"{name:34}{best:>10.1f}{median:>11.1f}{1e6 / best:>17,.0f}")
    result["ratio"] = round(statistics.median(paired), 2)
    result["ratio_range"] = [round(paired[0], 2), round(paired[-1], 2)]
    print(f"govbus / least Python, round by round: median {result['ratio']:.2f} "
          f"(from {paired[0]:.2f} to {paired[-1]:.2f})")
    return result
