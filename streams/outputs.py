"""What one batch of inputs sends, gathered into Kafka record batches per topic-partition, acknowledged as one."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections import defaultdict
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

_WORDS = struct.Struct("<I").iter_unpack
_M = 0x5BD1E995


def key_hash(key: bytes) -> int:
    """The default partitioner's hash: partition = key_hash(key) % partitions. Kafka's murmur2 (as
    aiokafka.partitioner.murmur2 has it), with the key's 4-byte words read at once, not byte by byte."""
    length = len(key)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _WORDS(key[:body]):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= key[body + 2] << 16
        if extra >= 2:
            h ^= key[body + 1] << 8
        h = ((h ^ key[body]) * _M) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * _M) & 0xFFFFFFFF
    return (h ^ (h >> 15)) & 0x7FFFFFFF


NO_HEADERS: list = []  # read, never written, by the compiled builder
LANES = 3  # producers a worker sends through: aiokafka has one produce request in flight per broker and producer


def lanes(bootstrap: str, options: dict) -> list[AIOKafkaProducer]:
    """The producers outputs go through (not started): acks=all, each batch sent at once (Outputs closes it)."""
    return [AIOKafkaProducer(bootstrap_servers=bootstrap, **options, acks="all", linger_ms=5,
                             max_batch_size=256 * 1024, request_timeout_ms=120_000) for _ in range(LANES)]


def ready(producer: AIOKafkaProducer, tp: tuple[str, int]) -> bool:
    """True when the producer takes a batch for this partition without waiting: it knows the topic, and holds no
    batch of the partition still to be sent (aiokafka's send_batch then returns at once; aiokafka is pinned, and
    tests/unit/test_outputs.py checks what this relies on)."""
    if producer.client.cluster.partitions_for_topic(tp[0]) is None:
        return False
    return not producer._message_accumulator._batches.get(TopicPartition(*tp))  # noqa: SLF001


class Outputs:
    """Records gathered per topic-partition into record batches, sent through one or more producers (lanes).

    aiokafka sends a broker one produce request at a time per producer, and a batch for a partition waits
    while that partition's last batch is still queued: one producer makes the next batch's outputs wait for the
    acknowledgement of the last. With several, as many requests are on their way at once. A topic-partition
    always goes through the same lane, so its records reach the broker in the order they were added."""

    def __init__(self, producers: AIOKafkaProducer | Sequence[AIOKafkaProducer], partitions: dict[str, int]):
        self.producers = list(producers) if isinstance(producers, Sequence) else [producers]
        self.partitions = partitions  # topic -> partition count
        # per topic-partition: [its open batch, that batch's compiled append, records in it]
        self._open: dict[tuple[str, int], list] = {}
        self._full: dict[tuple[str, int], list] = defaultdict(list)
        self.counts: dict[str, int] = {}

    def lane(self, tp: tuple[str, int]) -> AIOKafkaProducer:
        """The producer a topic-partition's records go through: the same for it, always."""
        return self.producers[(zlib.crc32(tp[0].encode()) + tp[1]) % len(self.producers)]

    def _batch(self, tp: tuple[str, int]) -> list:
        batch = self.lane(tp).create_batch()
        # aiokafka's BatchBuilder.append only counts, checks and passes on to this compiled builder (aiokafka is
        # pinned; tests/unit/test_outputs.py holds the batches equal to BatchBuilder.append's)
        return [batch, batch._builder.append, 0]  # noqa: SLF001

    def add(self, topic: str, key: bytes, value: bytes, *, hashed: int | None = None,
            partition: int | None = None, timestamp: int | None = None) -> None:
        """Append a record; its partition is `partition`, else from the key's hash (`hashed` saves
        hashing the same key again for each topic); its timestamp (ms) `timestamp`, else the time of sending."""
        if partition is None:
            partition = (key_hash(key) if hashed is None else hashed) % self.partitions[topic]
        tp = (topic, partition)
        slot = self._open.get(tp)
        if slot is None:
            slot = self._open[tp] = self._batch(tp)
        if slot[1](slot[2], timestamp, key, value, NO_HEADERS) is None:  # full: start another
            self._full[tp].append(self._closed(slot))
            slot = self._open[tp] = self._batch(tp)
            if slot[1](0, timestamp, key, value, NO_HEADERS) is None:
                raise ValueError(f"a record of {len(value)} bytes is larger than a whole batch for {topic}")
        slot[2] += 1

    def fan(self, key: bytes, hashed: int, records: list[tuple[str, bytes]]) -> None:
        """`add(topic, key, value, hashed=hashed)` for each (topic, value): one key's records to many topics (a
        publication's feeds), with the call's work done once."""
        partitions, opened = self.partitions, self._open
        for topic, value in records:
            tp = (topic, hashed % partitions[topic])
            slot = opened.get(tp)
            if slot is None:
                slot = opened[tp] = self._batch(tp)
            if slot[1](slot[2], None, key, value, NO_HEADERS) is None:
                self.add(topic, key, value, partition=tp[1])  # full: add() starts another
            else:
                slot[2] += 1

    @staticmethod
    def _closed(slot: list):
        batch = slot[0]
        batch._relative_offset = slot[2]  # noqa: SLF001
        batch.close()  # complete: the producer sends it at once instead of lingering for more
        return batch

    async def submit(self) -> asyncio.Future:
        """Hand every record batch to the producer (each partition's in order); returns what completes
        when the broker has acknowledged all of them, or fails with the first error."""
        for tp, slot in self._open.items():
            self._full[tp].append(self._closed(slot))
        self._open.clear()
        pending, self._full = self._full, defaultdict(list)
        self.counts = defaultdict(int)  # records per topic, for the metrics once acknowledged
        for (topic, _), batches in pending.items():
            self.counts[topic] += sum(b.record_count() for b in batches)
        acks = []
        waiting = []
        for tp, batches in pending.items():
            producer = self.lane(tp)
            if len(batches) == 1 and ready(producer, tp):  # taken at once: no task of its own
                acks.append(await producer.send_batch(batches[0], tp[0], partition=tp[1]))
            else:
                waiting.append((tp, batches))
        if waiting:  # one chain per partition keeps its batches in order; partitions go side by side
            chains = await asyncio.gather(*(self._submit(tp, batches) for tp, batches in waiting))
            acks += [f for chain in chains for f in chain]
        return asyncio.gather(*acks)

    async def _submit(self, tp: tuple[str, int], batches: list) -> list[asyncio.Future]:
        futures = []
        producer = self.lane(tp)
        for b in batches:
            futures.append(await producer.send_batch(b, tp[0], partition=tp[1]))
        return futures
