import os

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
