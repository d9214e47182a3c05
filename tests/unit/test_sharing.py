from datetime import UTC, date, datetime

import pytest

from streams.rules import sharing
from streams.rules.exchange import feed_records
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


def held(status="pending", **kw) -> dict:
    return {"request": request(), "provider": "WY-MZ", "status": status, **kw}


@pytest.mark.rule("R-26.1")
def test_only_a_request_in_the_right_state_is_acted_on():
    assert sharing.check_request_state("r1", held(), ("pending",)) is None
    assert "no such request" in sharing.check_request_state("r9", None, ("pending",)).reason
    refused = sharing.check_request_state("r1", held("approved"), ("pending",))
    assert "the request is approved" in refused.reason and refused.rule_ids == ("R-26.1",)


@pytest.mark.rule("R-26.2")
def test_a_grant_in_force_is_revoked_by_its_provider_only():
    grant = sharing.make_grant(request(), [], "WY-MZ", "WY-MZ (熊燕)", datetime.now(UTC))
    by = {"grant_id": grant["grant_id"], "by": "WY-MZ", "person": "熊燕", "reason": "合作结束"}
    assert sharing.check_revocation(by, grant) is None
    revoked = sharing.revoke(grant, by)
    assert revoked["revoked"] and revoked["revoked_reason"] == "合作结束 (熊燕)" and not grant["revoked"]
    assert "already revoked" in sharing.check_revocation(by, revoked).reason
    assert "only its provider WY-MZ" in sharing.check_revocation({**by, "by": "NJ-YB"}, grant).reason
    assert "no such authorization" in sharing.check_revocation(by, None).reason
    # once revoked, the grant routes nothing (R-26.2: only while in force)
    assert not sharing.grant_valid(revoked, ID1, date(2026, 12, 1))


@pytest.mark.rule("R-26.2")
def test_the_projection_keeps_exactly_the_granted_items():
    items = {"姓名": "张三", "保障类别": "城市低保", "月救助金额": 650.0}
    assert sharing.project(items, ("保障类别", "姓名")) == {"姓名": "张三", "保障类别": "城市低保"}
    assert sharing.project(items, ()) == {}
    assert sharing.project(items, None) == items and sharing.project(items, None) is not items


@pytest.mark.rule("R-25.1")
def test_a_dispute_comes_from_a_party_and_is_ruled_by_its_authority():
    assert sharing.check_dispute({"by": "NJ-YB"}, held("refused")) is None
    assert sharing.check_dispute({"by": "WY-MZ"}, held("refused")) is None
    outsider = sharing.check_dispute({"by": "NJ-RS"}, held("refused"))
    assert "only NJ-YB or WY-MZ" in outsider.reason and outsider.rule_ids == ("R-25.1",)
    disputed = held("disputed", authority="WY-SJJ")
    assert sharing.check_ruling({"authority": "WY-SJJ", "ruling": "overturn"}, disputed) is None
    assert sharing.check_ruling({"authority": "WY-SJJ", "ruling": "uphold"}, disputed) is None
    assert "WY-SJJ's" in sharing.check_ruling({"authority": "NJ-SJJ", "ruling": "uphold"}, disputed).reason
    assert sharing.check_ruling({"authority": "WY-SJJ", "ruling": "maybe"}, disputed) is not None


@pytest.mark.rule("R-27.1")
def test_a_subscription_takes_a_resource_shared_unconditionally_only():
    from streams.rules.sharing import check_subscription

    def entry(attribute):
        return {"entry": {"share_attribute": attribute, "share_basis": "《办法》第五十九条"}}

    assert check_subscription("GA-RK-001", entry("unconditional"), "NJ-YB") is None
    conditional = check_subscription("WY-MZ-DB-001", entry("conditional"), "NJ-YB")
    assert conditional.rule_ids == ("R-26.1",) and "govbus share request WY-MZ-DB-001 --as NJ-YB" in conditional.reason
    # the command it names is one the CLI takes as written (its "..." filled in)
    from ops.cli.share import request

    hint = conditional.reason.split("`")[1].replace("...", "x").split()
    assert hint[:3] == ["govbus", "share", "request"]
    ctx = request.make_context("request", hint[3:])
    assert (ctx.params["resource_code"], ctx.params["requester"]) == ("WY-MZ-DB-001", "NJ-YB")
    assert check_subscription("X-1", entry("none"), "NJ-YB").rule_ids == ("R-23.1",)
    assert check_subscription("X-2", None, "NJ-YB").code == "unknown_resource"
