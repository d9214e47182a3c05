import asyncio
import contextlib
import os

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.outputs import Outputs, key_hash

# org.apache.kafka.common.utils.UtilsTest#testMurmur2: the Java client's hashes, as signed ints
JAVA = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107}


def test_key_hash_is_the_java_clients_murmur2():
    assert {k: key_hash(k) for k in JAVA} == {k: h & 0x7FFFFFFF for k, h in JAVA.items()}


@given(st.binary(max_size=64))
def test_key_hash_puts_every_key_where_the_default_partitioner_does(key):
    assert key_hash(key) == murmur2(key) & 0x7FFFFFFF


def test_keys_of_every_length_and_tail():
    for n in range(40):
        key = os.urandom(n)
        assert key_hash(key) == murmur2(key) & 0x7FFFFFFF


def test_a_topic_partition_always_goes_through_the_same_lane_and_all_lanes_are_used():
    lanes = [object(), object(), object()]
    out = Outputs(lanes, {"t": 8, "u": 8})
    mapping = {(t, p): out.lane((t, p)) for t in ("t", "u") for p in range(8)}
    again = Outputs(lanes, {"t": 8, "u": 8})
    assert all(again.lane(tp) is lane for tp, lane in mapping.items())
    assert {id(lane) for lane in mapping.values()} == {id(lane) for lane in lanes}


@contextlib.contextmanager
def unstarted_producer():
    """A producer that makes record batches without a broker, stopped after: one left to the collector unstopped is
    logged as an error ("Unclosed AIOKafkaProducer")."""

    async def make():
        return AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=16 * 1024)

    producer = asyncio.run(make())
    try:
        yield producer
    finally:
        asyncio.run(producer.stop())


def _records(batch) -> list[tuple[int, bytes, bytes]]:
    from aiokafka.record.default_records import DefaultRecordBatch

    read = DefaultRecordBatch(bytes(batch._build()))  # noqa: SLF001
    return [(r.offset, r.key, r.value) for r in read]


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=16), st.binary(max_size=3000)), max_size=60))
def test_outputs_builds_the_batches_aiokafkas_batch_builder_does(records):
    with unstarted_producer() as producer:
        batches_alike(producer, records)


def batches_alike(producer, records):
    out = Outputs(producer, {"t": 1})
    for key, value in records:
        out.add("t", key, value, partition=0)
    for slot in out._open.values():  # noqa: SLF001
        out._full[("t", 0)].append(out._closed(slot))  # noqa: SLF001
    ours = out._full.get(("t", 0), [])  # noqa: SLF001
    theirs = [producer.create_batch()]
    for key, value in records:
        if theirs[-1].append(key=key, value=value, timestamp=None) is None:
            theirs.append(producer.create_batch())
            theirs[-1].append(key=key, value=value, timestamp=None)
    assert [b.record_count() for b in ours] == [b.record_count() for b in theirs if b.record_count()]
    assert [_records(b) for b in ours] == [_records(b) for b in theirs if b.record_count()]
    assert all(b.closed() for b in ours)


def test_what_a_batch_taken_at_once_relies_on_in_aiokafka_is_there():
    import inspect

    from aiokafka.client import AIOKafkaClient
    from aiokafka.producer.message_accumulator import MessageAccumulator

    # send_batch waits only for the topic's metadata and for the partition's batch still queued
    send = inspect.getsource(AIOKafkaProducer.send_batch)
    assert "await self.client._wait_on_metadata(topic)" in send
    assert "await self._message_accumulator.add_batch(" in send
    add = inspect.getsource(MessageAccumulator.add_batch)
    assert "pending = self._batches.get(tp)" in add and "await pending[-1].wait_drain" in add
    metadata = inspect.getsource(AIOKafkaClient._wait_on_metadata)
    assert "partitions = self.cluster.partitions_for_topic(topic)" in metadata
    assert "if partitions is not None:\n            return partitions" in metadata


@given(st.binary(min_size=1, max_size=20), st.lists(st.tuples(st.sampled_from(["f.a", "f.b", "f.c"]),
                                                               st.binary(max_size=9000)), max_size=30))
def test_a_fan_out_appends_what_an_add_each_would(key, records):
    with unstarted_producer() as producer:
        fan_alike(producer, key, records)


def fan_alike(producer, key, records):
    partitions = {"f.a": 8, "f.b": 3, "f.c": 8}
    fanned, added = Outputs(producer, partitions), Outputs(producer, partitions)
    fanned.fan(key, key_hash(key), records)
    for topic, value in records:
        added.add(topic, key, value)
    for out in (fanned, added):
        for tp, slot in list(out._open.items()):  # noqa: SLF001
            out._full[tp].append(out._closed(slot))  # noqa: SLF001
    assert {tp: [_records(b) for b in bs] for tp, bs in fanned._full.items()} == \
        {tp: [_records(b) for b in bs] for tp, bs in added._full.items()}  # noqa: SLF001
