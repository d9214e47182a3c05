import hashlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.provenance import canonical_text, digester, provenance_digest
from streams.rules.exchange import (
    check_against_catalog,
    check_delivery,
    check_publisher,
    duplicate_findings,
    item_sources,
    remember_sources,
    value_digest,
)
from streams.rules.identifiers import subject_problem
from tests.helpers import approved_entry, delivery, resident_id
from topics.departments import load

DEPTS = load()
GA = approved_entry("ga-population.yaml")
ID1 = resident_id("51102419751230567")


def test_a_well_formed_delivery_passes():
    assert check_delivery(delivery(), DEPTS) is None


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
def test_a_publication_names_the_department_whose_inbound_topic_it_came_from():
    assert check_publisher(delivery(publisher="NJ-GA"), "NJ-GA") is None
    assert check_publisher(delivery(publisher="NJ-GA"), None) is None  # the operators' topic
    refusal = check_publisher(delivery(publisher="NJ-GA"), "NJ-YB")
    assert refusal.code == "suspected_tampering" and refusal.rule_ids == ("R-39.1", "R-40.1")
    assert "NJ-YB" in refusal.reason and "'NJ-GA'" in refusal.reason


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


@pytest.mark.rule("R-28.1")
@given(st.lists(st.text(), min_size=4, max_size=4), st.dictionaries(st.text(), _values, min_size=1, max_size=6),
       st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=5), _values)
def test_one_publications_digests_of_each_projection_are_its_own(head, items, picks, other):
    names = sorted(items)
    digest = digester(*head)
    for pick in picks:
        projection = {names[k % len(names)]: items[names[k % len(names)]] for k in pick}
        assert digest(projection) == provenance_digest(*head, projection)
    changed = {names[0]: other}  # the same name with another value: its own text, not the one written before
    assert digest(changed) == provenance_digest(*head, changed)


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


SCALAR = st.one_of(st.text(alphabet=st.sampled_from("张三a\x00 "), max_size=4), st.integers(), st.booleans(),
                   st.none(), st.floats(), st.lists(st.text(max_size=2), max_size=2))


def storable_part_by_part(v) -> bool:
    if isinstance(v, str):
        return "\x00" not in v
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(storable_part_by_part(k) and storable_part_by_part(x) for k, x in v.items())
    if isinstance(v, list):
        return all(storable_part_by_part(x) for x in v)
    return True


@given(st.one_of(st.dictionaries(st.text(alphabet=st.sampled_from("姓名k\x00"), max_size=3), SCALAR, max_size=4),
                 SCALAR))
def test_the_quick_look_at_usual_values_agrees_with_the_walk_through_every_part(value):
    from streams.rules import exchange

    storable = storable_part_by_part(value)
    if exchange._plain(value):  # noqa: SLF001
        assert storable
    assert (exchange.unstorable(value, "items") is None) == storable


@pytest.mark.rule("R-10.1")
@pytest.mark.rule("R-17.1")
@pytest.mark.rule("R-17.2")
def test_deliveries_are_held_against_the_catalog():
    ok = delivery(subject=ID1)
    assert check_against_catalog(ok, GA, subject_problem) is None
    assert check_against_catalog(ok, None, subject_problem).code == "unknown_resource"
    wrong = check_against_catalog(delivery(publisher="NJ-MZ", subject=ID1), GA, subject_problem)
    assert wrong.code == "one_source_violation" and "one registered source is NJ-GA" in wrong.reason
    bad_id = check_against_catalog(delivery(subject="511024197512305671"), GA, subject_problem)
    assert bad_id.code == "invalid_identifier" and bad_id.rule_ids == ("R-17.2",)
    extra = check_against_catalog(delivery(subject=ID1, items={"姓名": "x", "血型": "A"}), GA, subject_problem)
    assert extra.code == "items_mismatch" and "血型" in extra.reason


@pytest.mark.rule("R-17.2")
@pytest.mark.rule("R-11.1")
def test_a_publication_is_about_the_kind_of_subject_and_has_values_of_the_types_its_entry_defines():
    company = "91350100M000100Y43"  # a valid unified social credit code
    assert subject_problem(company) is None
    kind = check_against_catalog(delivery(subject=company, items={"姓名": "公司"}), GA, subject_problem)
    assert kind.code == "invalid_identifier" and kind.rule_ids == ("R-17.2",)
    assert kind.reason == (f"{company} is a unified social credit code, an organisation's, not a resident identity "
                           "number: the subject of GA-RK-001 is its 公民身份号码")
    for bad in ("1980-13-45", "1980/01/01", "19800101", 19800101):
        wrong = check_against_catalog(delivery(subject=ID1, items={"出生日期": bad}), GA, subject_problem)
        assert wrong.code == "items_mismatch" and wrong.rule_ids == ("R-11.1",), bad
        assert f"出生日期 is {bad!r}, not a date written YYYY-MM-DD" in wrong.reason
    for fine in ("1980-01-01", None):  # an empty cell is no value
        assert check_against_catalog(delivery(subject=ID1, items={"出生日期": fine}), GA, subject_problem) is None
    typed = approved_entry("ga-population.yaml", data_items=[
        {"name": "公民身份号码", "type": "identifier", "subject_id": True}, {"name": "人数", "type": "integer"},
        {"name": "金额", "type": "decimal"}, {"name": "在册", "type": "boolean"},
        {"name": "登记时间", "type": "datetime"}])
    fits = {"人数": (3, "3", "-2"), "金额": (650, 650.5, "650", "650.50"), "在册": (True, "true", "是", "0"),
            "登记时间": ("2026-12-07T10:00", "2026-12-07 10:00:05+08:00")}
    misfits = {"人数": ("3.5", 3.5, "三", True, "٣"), "金额": ("1e3", "６５０", float("inf"), False),
               "在册": ("yes", 1, "Y"), "登记时间": ("2026-12-07", "2026-13-07T10:00", "10:00")}
    for name, values in fits.items():
        for v in values:
            assert check_against_catalog(delivery(subject=ID1, items={name: v}), typed, subject_problem) is None, v
    for name, values in misfits.items():
        for v in values:
            wrong = check_against_catalog(delivery(subject=ID1, items={name: v}), typed, subject_problem)
            assert wrong is not None and wrong.code == "items_mismatch" and f"{name} is {v!r}, not " in wrong.reason
    # an organisations' resource takes codes, not identity numbers
    firms = approved_entry("ga-population.yaml", resource_code="SC-QY-001", data_items=[
        {"name": "统一社会信用代码", "type": "identifier", "subject_id": True}, {"name": "名称", "type": "string"}])
    assert check_against_catalog(delivery(resource="SC-QY-001", subject=company, items={"名称": "公司"}), firms,
                                 subject_problem) is None
    person = check_against_catalog(delivery(resource="SC-QY-001", subject=ID1, items={"名称": "x"}), firms,
                                   subject_problem)
    assert person.code == "invalid_identifier" and "not an organisation's unified social credit code" in person.reason


MZ = approved_entry("wy-subsidy.yaml", resource_code="MZ-JZ-001", provider="NJ-MZ", system_code="MZ-JZ",
                    data_items=[{"name": "公民身份号码", "type": "identifier", "subject_id": True},
                                {"name": "姓名", "type": "string"}, {"name": "户籍地址", "type": "string"},
                                {"name": "救助类别", "type": "string"}])


@pytest.mark.rule("R-17.3")
@pytest.mark.rule("R-45.1")
def test_duplicate_collection_is_matched_by_item_definition_not_resource():
    sources = item_sources([GA, MZ])
    assert sources["姓名:string"] == ("NJ-GA", "GA-RK-001")  # the base database's lead is the source
    memory: dict = {}
    ga = delivery(subject=ID1, items={"姓名": "张三", "户籍地址": "市中区"})
    assert duplicate_findings(ga, GA, sources, memory, lambda d, r: False) == []
    assert remember_sources(ga, GA, sources, memory)
    mz = delivery(publisher="NJ-MZ", resource="MZ-JZ-001", subject=ID1,
                  items={"姓名": "张三", "户籍地址": "东兴区", "救助类别": "临时救助"})
    (f,) = duplicate_findings(mz, MZ, sources, memory, lambda d, r: False)
    assert (f.kind, f.source_department, f.items, f.rule_ids) == (
        "duplicate_collection", "NJ-GA", ("姓名", "户籍地址"), ("R-17.3", "R-45.1"))
    # about a subject the source never published: nothing to compare with
    other = {**mz, "subject_id": resident_id()}
    assert duplicate_findings(other, MZ, sources, {}, lambda d, r: False) == []


@pytest.mark.rule("R-27.1")
@pytest.mark.rule("R-48.1")
def test_passing_on_received_data_as_ones_own_is_detected():
    sources = item_sources([GA, MZ])
    memory: dict = {}
    remember_sources(delivery(subject=ID1, items={"姓名": "张三", "户籍地址": "市中区"}), GA, sources, memory)
    same = delivery(publisher="NJ-MZ", resource="MZ-JZ-001", subject=ID1, items={"姓名": "张三", "户籍地址": "市中区"})
    (f,) = duplicate_findings(same, MZ, sources, memory, lambda dept, res: (dept, res) == ("NJ-MZ", "GA-RK-001"))
    assert f.kind == "republication" and f.rule_ids == ("R-27.1", "R-48.1")


def test_an_entry_replaced_in_the_catalog_is_read_anew():
    import copy

    from streams.rules.exchange import entry_items

    first = entry_items(GA)
    assert entry_items(GA) is first
    changed = copy.deepcopy(GA)
    changed["entry"]["data_items"] = changed["entry"]["data_items"][:1]
    assert entry_items(changed).names == {GA["entry"]["data_items"][0]["name"]}
    assert entry_items(GA) is first
