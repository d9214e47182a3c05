import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.provenance import canonical_text, provenance_digest
from streams.rules.exchange import check_delivery, value_digest
from tests.helpers import delivery
from topics.departments import load

DEPTS = load()


def test_a_well_formed_delivery_passes():
    assert check_delivery(delivery(), DEPTS) is None


def test_unknown_publisher_is_refused():
    refusal = check_delivery(delivery(publisher="XX-NOPE"), DEPTS)
    assert refusal.code == "unknown_publisher"
    assert "XX-NOPE" in refusal.reason and "not a department" in refusal.reason


def test_empty_items_and_bad_event_id_are_refused():
    assert check_delivery(delivery(items={}), DEPTS).code == "invalid_record"
    assert "event_id" in check_delivery(delivery(event_id="has space"), DEPTS).reason


def test_digest_changes_with_any_content():
    a = provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})
    assert a != provenance_digest("NJ-GA", "R", "e", "s", {"x": "2"})
    assert a != provenance_digest("NJ-SCJG", "R", "e", "s", {"x": "1"})
    assert a == provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})


_values = st.one_of(st.text(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                    st.lists(st.text(), max_size=3), st.dictionaries(st.text(), st.integers(), max_size=3))


@pytest.mark.rule("R-28.1")
@given(st.lists(st.text(), min_size=4, max_size=4), st.dictionaries(st.text(), _values, max_size=6))
def test_digest_is_sha256_of_the_documented_canonical_json(head, items):
    reference = json.dumps([*head, items], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert canonical_text(*head, items) == reference
    assert provenance_digest(*head, items) == hashlib.sha256(reference.encode()).hexdigest()


@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none(), st.lists(st.text(), max_size=3)))
def test_value_digest_is_the_json_of_the_value(value):
    reference = json.dumps(value, ensure_ascii=False, sort_keys=True)
    assert value_digest(value) == hashlib.sha256(reference.encode()).hexdigest()[:16]


@pytest.mark.rule("R-8.1")
@pytest.mark.parametrize("items, where", [
    ({"姓名": "张\x00三"}, "data item '姓名'"),
    ({"姓\x00名": "张三"}, "a name in items"),
    ({"月救助金额": float("nan")}, "data item '月救助金额'"),
    ({"月救助金额": float("inf")}, "data item '月救助金额'"),
])
def test_what_no_store_can_hold_is_refused_at_the_door(items, where):
    refusal = check_delivery(delivery(items=items), DEPTS)
    assert refusal is not None and refusal.code == "unstorable_value"
    assert where in refusal.reason and "publish again" in refusal.reason


def test_ordinary_values_are_storable():
    from streams.rules.exchange import unstorable

    assert unstorable({"姓名": "张三", "n": 3, "x": 1.5, "b": True, "none": None, "l": ["a", {"k": "v"}]}) is None
    assert "field 'l'[1].k" in unstorable({"l": ["a", {"k": "v\x00"}]})
