import os

from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.outputs import key_hash

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
