from datetime import UTC, date, datetime

import pytest

from streams.rules import sharing
from streams.rules.exchange import (
    check_against_catalog,
    duplicate_findings,
    feed_records,
    item_sources,
    remember_sources,
)
from streams.rules.identifiers import subject_problem
from tests.helpers import approved_entry, delivery, resident_id
from topics.departments import load

DEPTS = load()
GA = approved_entry("ga-population.yaml")
WY = approved_entry("wy-subsidy.yaml")
ID1 = resident_id("51102419751230567")


def request(**kw) -> dict:
    return {"event_id": "r1", "requester": "NJ-YB", "resource_code": "WY-MZ-DB-001", "purpose": "医保救助衔接",
            "items": ["姓名", "保障类别"], "subjects": [], "valid_from": "2026-11-01", "valid_until": "2027-10-31",
            **kw}


@pytest.mark.rule("R-26.1")
def test_a_request_states_purpose_and_catalogued_items():
    assert sharing.check_request(request(), WY, DEPTS) == []
    ps = sharing.check_request(request(purpose=" ", items=["姓名", "银行账号"]), WY, DEPTS)
    text = " ".join(p.reason for p in ps)
    assert "states its purpose" in text and "银行账号 are not data items of WY-MZ-DB-001" in text


@pytest.mark.rule("R-10.1")
def test_nothing_is_requested_of_an_uncatalogued_resource():
    (p,) = sharing.check_request(request(), None, DEPTS)
    assert p.rule_ids == ("R-10.1",)


@pytest.mark.rule("R-27.1")
def test_unconditional_resources_need_no_request():
    (p,) = sharing.check_request(request(resource_code="GA-RK-001", items=["姓名"]), GA, DEPTS)
    assert "no request is needed" in p.reason and p.rule_ids == ("R-27.1",)


@pytest.mark.rule("R-26.1")
def test_a_refusal_gives_reason_and_basis_and_only_the_provider_answers():
    req = request()
    ans = {"provider": "WY-MZ", "decision": "refuse", "reason": "涉及个人隐私", "basis": None, "items": []}
    assert "reason and its basis" in sharing.check_answer(ans, req, "WY-MZ")[0].reason
    ans["basis"] = "《社会救助暂行办法》第五十九条"
    assert sharing.check_answer(ans, req, "WY-MZ") == []
    assert "only the provider WY-MZ" in sharing.check_answer({**ans, "provider": "NJ-MZ"}, req, "WY-MZ")[0].reason


@pytest.mark.rule("R-26.2")
def test_an_approval_is_a_directed_authorization_for_exactly_the_scope():
    grant = sharing.make_grant(request(subjects=[ID1]), ["姓名"], "WY-MZ", "WY-MZ (x)", datetime.now(UTC))
    assert (grant["grantee"], grant["items"], grant["subjects"], grant["purpose"]) == (
        "NJ-YB", ["姓名"], [ID1], "医保救助衔接")
    assert sharing.grant_valid(grant, ID1, date(2026, 12, 1))
    assert not sharing.grant_valid(grant, resident_id(), date(2026, 12, 1))  # another subject
    assert not sharing.grant_valid(grant, ID1, date(2027, 11, 1))  # expired
    assert not sharing.grant_valid(grant, ID1, date(2026, 10, 31))  # not yet valid
    assert not sharing.grant_valid({**grant, "revoked": True}, ID1, date(2026, 12, 1))
    assert "cannot add items" in sharing.check_answer(
        {"provider": "WY-MZ", "decision": "approve", "items": ["月救助金额"]}, request(), "WY-MZ")[0].reason


@pytest.mark.rule("R-26.2")
@pytest.mark.rule("R-27.1")
def test_routes_by_share_attribute_and_projection():
    grant = sharing.make_grant(request(), [], "WY-MZ", "WY-MZ (x)", datetime.now(UTC))
    on = date(2026, 12, 1)
    # conditional: grant holders only, subscribers without a grant get nothing
    (r,) = sharing.routes("WY-MZ", ID1, WY, ["NJ-RS"], [grant], on)
    assert (r.department, r.grant_id, r.items) == ("NJ-YB", grant["grant_id"], ("保障类别", "姓名"))
    d = delivery(publisher="WY-MZ", resource="WY-MZ-DB-001", subject=ID1,
                 items={"姓名": "张三", "保障类别": "城市低保", "月救助金额": 650.0})
    (fed,) = feed_records(d, [r], datetime.now(UTC))
    assert fed["items"] == {"姓名": "张三", "保障类别": "城市低保"}
    assert (fed["grant_id"], fed["purpose"]) == (grant["grant_id"], "医保救助衔接")
    # unconditional: every subscriber, all items, never the publisher itself
    assert [x.department for x in sharing.routes("NJ-GA", ID1, GA, ["NJ-MZ", "NJ-GA"], [], on)] == ["NJ-MZ"]
    # none: nobody
    none = {**WY, "entry": {**WY["entry"], "share_attribute": "none"}}
    assert sharing.routes("WY-MZ", ID1, none, ["NJ-RS"], [grant], on) == []


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
