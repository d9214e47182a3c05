"""The packed duplicate-collection memory gives back exactly what the rules stored, whatever it holds."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.rules.exchange import value_digest
from streams.subjects import PACKED, SubjectMemory, encode_json

names = st.text(min_size=1, max_size=12)
digests = st.one_of(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), st.text(max_size=20))
memories = st.dictionaries(names, st.tuples(names, names, digests).map(list), max_size=6)


@given(st.lists(memories, min_size=1, max_size=5))
def test_what_is_put_is_what_is_got(knowns):
    m = SubjectMemory()
    for i, known in enumerate(knowns):
        m.put(str(i).encode(), known)
    for i, known in enumerate(knowns):
        assert m.get(str(i).encode()) == known


@pytest.mark.rule("R-17.3")
def test_a_subjects_memory_is_packed_small_and_read_back_from_the_topic_form():
    known = {f"{name}:string": ["WY-MZ", "WY-MZ-DB-001", value_digest(name)] for name in ("姓名", "保障类别", "住址")}
    m = SubjectMemory()
    m.load(b"511024195001010011", encode_json(known))  # as the compacted topic carries it
    stored = m.subjects[b"511024195001010011"]
    assert stored[0] == PACKED and len(stored) == 1 + 3 * 12  # 37 bytes instead of the topic's 170
    assert m.get(b"511024195001010011") == known
    assert json.loads(encode_json(known)) == known
    m.load(b"511024195001010011", None)  # a tombstone forgets the subject
    assert m.get(b"511024195001010011") == {} and len(m) == 0


def test_what_does_not_fit_the_packed_form_is_kept_as_json():
    odd = {"姓名:string": ["WY-MZ", "WY-MZ-DB-001", "ABCDEF0123456789"]}  # upper-case hex would not come back
    m = SubjectMemory()
    m.put(b"s", odd)
    assert m.subjects[b"s"] == encode_json(odd) and m.get(b"s") == odd


def test_the_collector_never_walks_the_subjects():
    """Millions of subjects must not make each full pass of the garbage collector longer: the memory holds
    bytes alone, and a dict of bytes is not tracked by the collector at all (it is cleared of that at creation,
    and stays clear while nothing tracked goes in)."""
    import gc

    m = SubjectMemory()
    known = {"姓名:string": ["WY-MZ", "WY-MZ-DB-001", value_digest("x")]}
    for i in range(1000):
        m.load(str(i).encode(), encode_json(known))
        m.put(f"p{i}".encode(), known)
    m.put(b"odd", {"姓名:string": ["WY-MZ", "WY-MZ-DB-001", "not hex"]})  # kept as JSON: bytes all the same
    assert not gc.is_tracked(m.subjects)
    assert all(type(k) is bytes and type(v) is bytes for k, v in m.subjects.items())
