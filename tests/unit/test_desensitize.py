"""Desensitization (R-29.1): each declaration on examples, the review's refusals, and a property: for every item type
and every declaration, a personal datum never reaches an open feed as it stands."""

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import desensitize as d
from streams.rules.catalog import check_open_treatments
from streams.rules.identifiers import resident_id_check_char

pytestmark = pytest.mark.rule("R-29.1")
TYPES = ("string", "integer", "decimal", "date", "datetime", "boolean", "identifier")


def entry(*items: dict, opened: str = "unconditional") -> dict:
    return {"entry": {"open_attribute": opened, "data_items": [
        {"name": "公民身份号码", "type": "identifier", "subject_id": True, "personal": True}, *items]}}


def content(*items: dict, opened: str = "unconditional") -> dict:
    """What a catalog submission's review sees."""
    return entry(*items, opened=opened)["entry"]


def item(name, type_="string", personal=True, treatment=None) -> dict:
    return {"name": name, "type": type_, "subject_id": False, "basic": False, "personal": personal,
            "open_treatment": treatment}


def test_each_declaration_on_examples():
    e = entry(item("身份证", "identifier", treatment="mask:identity"), item("姓名", treatment="mask:name"),
              item("手机", treatment="mask:phone"), item("住址", treatment="mask:address"),
              item("出生日期", "date", treatment="generalize:year"), item("户籍", treatment="generalize:district"),
              item("病史", treatment="remove"), item("救助类别", personal=False, treatment="none"),
              item("金额", "decimal", personal=False))
    out = d.desensitize(e, {"公民身份号码": "51102419690817975X", "身份证": "51102419690817975X", "姓名": "唐秀英",
                            "手机": "13812345678", "住址": "四川省内江市威远县严陵镇新街12号",
                            "出生日期": "1969-08-17", "户籍": "内江市市中区城西街道", "病史": "高血压",
                            "救助类别": "农村低保", "金额": 480.0, "未登记": "x"})
    assert out == {"身份证": "5****************X", "姓名": "唐**", "手机": "138****5678",
                   "住址": "四川省内江市威远县****", "出生日期": "1969", "户籍": "内江市市中区", "救助类别": "农村低保",
                   "金额": 480.0}  # the subject's identifier, the removed item and the uncatalogued one are gone


def test_a_value_a_mask_cannot_read_is_masked_whole():
    assert d.mask_phone("0832-1234567") == "*" * 12
    assert d.mask_address("某地某街12号") == "*" * 7  # no district or county named
    assert d.generalize_district("某地某街") == "*"
    assert d.generalize_year("不详") == "*"
    assert d.mask_name("李") == "*"
    assert d.generalize_year(datetime(1969, 8, 17, tzinfo=UTC)) == "1969"
    assert d.generalize_year(date(1970, 1, 1)) == "1970"


def test_the_review_refuses_a_personal_item_opened_without_a_fitting_declaration():
    reasons = [p.reason for p in check_open_treatments(content(
        item("姓名"), item("住址", treatment="none"), item("出生日期", "boolean", treatment="generalize:year"),
        item("手机", treatment="hide"), item("救助类别", personal=False)))]
    assert len(reasons) == 4
    assert "姓名 is personal and the resource is open: declare" in reasons[0]
    assert "住址 is personal: it cannot be opened as it stands" in reasons[1]
    assert "generalize:year does not apply to a boolean" in reasons[2]
    assert "'hide' is not a desensitization" in reasons[3]
    assert all(p.rule_ids == ("R-29.1",) for p in check_open_treatments(content(item("姓名"))))
    assert check_open_treatments(content(item("姓名"), opened="not_open")) == []  # never opened: nothing to declare
    assert check_open_treatments(content(item("姓名", treatment="mask:name"), opened="conditional")) == []


resident_ids = st.builds(lambda region, born, serial: (lambda b: b + resident_id_check_char(b))(
    f"{region:06d}{born:%Y%m%d}{serial:03d}"),
    st.integers(110000, 659999), st.dates(date(1900, 1, 1), date(2025, 12, 31)), st.integers(0, 999))
names = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=2, max_size=4)
phones = st.builds(lambda n: f"1{n:010d}", st.integers(3 * 10**9, 10**10 - 1))
addresses = st.builds(lambda a, b, c: f"四川省{a}市{b}区{c}", names, names, st.text(min_size=1, max_size=20))
VALUES = {
    "string": st.one_of(names, phones, addresses, resident_ids, st.text(min_size=1, max_size=30)),
    "identifier": st.one_of(resident_ids, st.text(min_size=1, max_size=20)),
    "integer": st.integers(), "decimal": st.floats(allow_nan=False), "boolean": st.booleans(),
    "date": st.dates().map(date.isoformat), "datetime": st.datetimes().map(datetime.isoformat),
}
DECLARATIONS = [None, *d.TREATMENTS]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(TYPES).flatmap(lambda t: st.tuples(st.just(t), VALUES[t])), st.sampled_from(DECLARATIONS),
       st.sampled_from(["unconditional", "conditional"]))
def test_a_personal_datum_never_reaches_an_open_feed_as_it_stands(typed, declaration, opened):
    type_, value = typed
    personal = item("数据", type_, treatment=declaration)
    out = d.desensitize(entry(personal, opened=opened), {"数据": value, "公民身份号码": value})
    assert "公民身份号码" not in out  # the subject's identifier is never opened
    if "数据" not in out:
        return  # removed
    shown = out["数据"]
    if set(str(value)) <= {"*"}:
        return  # nothing to hide: the value is all mask already
    assert shown != value and str(shown) != str(value), (declaration, value, shown)
    if declaration == "mask:identity" and isinstance(value, str) and len(value) == 18:
        assert sum(c != "*" for c in shown) <= 2  # no more than the first and the last character
    if declaration in ("generalize:year", "generalize:district"):
        assert shown == "*" or str(value).startswith(shown)
