"""The rules of citizens' and departments' cases: verification, objections, open requests, objections to the open
catalog, extensions, and how a datum's cases mark its feed deliveries."""

from datetime import UTC, date, datetime

import pytest

from streams.rules import cases
from streams.rules.exchange import feed_records
from streams.rules.refusals import Refusal
from streams.rules.sharing import Route
from streams.rules.workcalendar import WorkCalendar
from tests.helpers import approved_entry, delivery, resident_id
from topics.departments import load

DEPTS = load()
CAL = WorkCalendar()
WY = approved_entry("wy-subsidy.yaml")
OPEN = approved_entry("wy-subsidy.yaml", open_attribute="有条件开放", open_conditions="仅用于公益研究",
                      open_basis="《政务数据资源管理暂行办法》第三十二条")
FREE = approved_entry("wy-subsidy.yaml", open_attribute="无条件开放", open_basis=None)
ID1 = resident_id("51102419751230567")
CITIZEN = resident_id("51100219800101123")
PARTIES = {CITIZEN: {"party_id": CITIZEN, "name": "李梅", "authenticated": True}}
MONDAY = date(2026, 3, 2)  # a working week with no holiday in it


def opening(case_type="verification", **kw) -> dict:
    return {"event_id": "c1", "case_type": case_type, "requester": CITIZEN, "person": None,
            "resource_code": "WY-MZ-DB-001", "subject_id": ID1, "items": ["保障类别"], "reason": "我已不再享受低保",
            "use": None, "award": None, **kw}


def step(action, actor, **kw) -> dict:
    return {"event_id": f"s-{action}", "occurred_at": datetime(2026, 3, 2, tzinfo=UTC), "case_id": "c1",
            "action": action, "actor": actor, "person": "熊燕",
            "outcome": None, "reason": None, "basis": None, "to_department": None, "extension_days": None,
            "approved_by": None, **kw}


def opened(case_type="verification", entry=WY, **kw) -> dict:
    rec = opening(case_type, **kw)
    assert cases.check_opening(rec, entry, PARTIES, DEPTS) == []
    return cases.open_case(rec, entry, DEPTS, MONDAY, CAL).case


def refusal(case, rec, on=MONDAY) -> Refusal:
    with pytest.raises(Refusal) as info:
        cases.take_step(case, rec, DEPTS, on, CAL)
    return info.value


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-19.2")
def test_a_verification_is_due_from_the_provider_in_ten_working_days_and_flags_its_datum():
    t = cases.open_case(opening(), WY, DEPTS, MONDAY, CAL)
    assert t.deadline["party"] == "WY-MZ" and t.deadline["due_on"] == "2026-03-16"  # two working weeks on
    assert [(c.action, c.deadline_id, c.case_type) for c in t.commands] == [
        ("start", "verification:c1", "verification")]
    assert t.flag is True and t.case["status"] == "open"


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-17.2")
def test_who_may_open_a_case_and_about_what():
    assert cases.check_opening(opening(requester="NJ-YB"), WY, PARTIES, DEPTS) == []  # a department may
    unregistered = resident_id("51102519920715004")
    (p,) = cases.check_opening(opening(requester=unregistered), WY, PARTIES, DEPTS)
    assert "is not registered" in p.reason and "govbus party register" in p.reason
    (p,) = cases.check_opening(opening(requester="11010519491231002X"[:17] + "0"), WY, PARTIES, DEPTS)
    assert "neither a department nor a registered party" in p.reason and "R-17.2" in p.rule_ids
    text = " ".join(p.reason for p in cases.check_opening(
        opening(items=["银行账号"], subject_id="123", reason=" "), WY, PARTIES, DEPTS))
    assert "银行账号 are not data items" in text and "subject" in text and "says what it is about" in text
    (p,) = cases.check_opening(opening(), None, PARTIES, DEPTS)
    assert "not in the approved catalog" in p.reason
    (p,) = cases.check_opening(opening(case_type="complaint"), WY, PARTIES, DEPTS)
    assert "is not one of" in p.reason


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-19.2")
def test_the_provider_answers_confirmed_or_corrected_and_only_the_provider():
    case = opened()
    assert "is for WY-MZ, not NJ-YB" in refusal(case, step("answer", "NJ-YB", outcome="confirmed")).reason
    assert "confirmed or corrected" in refusal(case, step("answer", "WY-MZ", outcome="maybe")).reason
    assert "says why" in refusal(case, step("answer", "WY-MZ", outcome="corrected")).reason
    assert "names the person" in refusal(case, step("answer", "WY-MZ", outcome="confirmed", person=" ")).reason
    t = cases.take_step(case, step("answer", "WY-MZ", outcome="corrected", reason="已于2月停保"), DEPTS, MONDAY, CAL)
    assert t.case["status"] == "corrected" and t.correct and t.flag is False
    assert [(c.action, c.deadline_id) for c in t.commands] == [("answer", "verification:c1")]
    confirmed = cases.take_step(case, step("answer", "WY-MZ", outcome="confirmed"), DEPTS, MONDAY, CAL)
    assert not confirmed.correct and confirmed.flag is False
    assert "is closed (corrected)" in refusal(t.case, step("answer", "WY-MZ", outcome="confirmed")).reason
    assert "there is no case c1" in refusal(None, step("answer", "WY-MZ", outcome="confirmed")).reason


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-7.1")
def test_an_extension_once_by_at_most_ten_days_with_the_heads_approval():
    case = opened()
    p = refusal(case, step("extend", "WY-MZ", extension_days=5, approved_by="熊燕"))  # the data officer
    assert "principal head of WY-MZ, 邹凯" in p.reason and p.rule_ids == ("R-7.1", "R-19.1")
    assert "1 to 10 working days" in refusal(case, step("extend", "WY-MZ", extension_days=11,
                                                             approved_by="邹凯")).reason
    assert "is for WY-MZ" in refusal(case, step("extend", "NJ-YB", extension_days=5, approved_by="曹阳")).reason
    t = cases.take_step(case, step("extend", "WY-MZ", extension_days=5, approved_by="邹凯"), DEPTS, MONDAY, CAL)
    assert t.deadline["due_on"] == "2026-03-23" and t.deadline["extended_by"] == 5
    assert [(c.action, c.extension_days, c.approved_by) for c in t.commands] == [("extend", 5, "邹凯")]
    again = refusal(t.case, step("extend", "WY-MZ", extension_days=2, approved_by="邹凯"))
    assert "one extension only" in again.reason


@pytest.mark.rule("R-41.1")
def test_an_objection_is_marked_in_three_days_forwarded_in_five_and_decided_in_five_of_receipt():
    t = cases.open_case(opening("objection"), WY, DEPTS, MONDAY, CAL)
    case = t.case
    assert (t.deadline["case_type"], t.deadline["party"], t.deadline["due_on"]) == (
        "objection_mark", "WY-SJJ", "2026-03-05")
    assert t.flag is None  # flagged once marked
    assert "not marked yet" in refusal(case, step("decide", "WY-SJJ", outcome="corrected", reason="x")).reason
    assert "is for WY-SJJ" in refusal(case, step("mark", "NJ-SJJ")).reason
    assert "cannot be extended" in refusal(case, step("extend", "WY-SJJ", extension_days=2,
                                                          approved_by="姚远")).reason
    marked = cases.take_step(case, step("mark", "WY-SJJ"), DEPTS, MONDAY, CAL)
    assert marked.flag is True and marked.case["status"] == "marked"
    assert (marked.deadline["case_type"], marked.deadline["due_on"]) == ("objection_forward", "2026-03-09")
    assert [c.action for c in marked.commands] == ["answer", "start"]
    assert "already marked" in refusal(marked.case, step("mark", "WY-SJJ")).reason
    assert "to be forwarded" in refusal(marked.case, step("decide", "WY-SJJ", outcome="corrected",
                                                              reason="x")).reason
    forwarded = cases.take_step(marked.case, step("forward", "WY-SJJ"), DEPTS, date(2026, 3, 4), CAL)
    assert (forwarded.deadline["party"], forwarded.deadline["due_on"]) == ("WY-MZ", "2026-03-11")  # 5 from ITS receipt
    assert "is for WY-MZ, not WY-SJJ" in refusal(forwarded.case, step("decide", "WY-SJJ", outcome="corrected",
                                                                          reason="x")).reason
    decided = cases.take_step(forwarded.case, step("decide", "WY-MZ", outcome="corrected", reason="核实有误"),
                              DEPTS, MONDAY, CAL)
    assert decided.correct and decided.flag is False and decided.case["status"] == "corrected"
    assert f"reported back to WY-SJJ; {CITIZEN} is told the outcome" in decided.message


@pytest.mark.rule("R-41.1")
def test_an_objection_in_the_authoritys_own_scope_is_decided_by_it_within_ten_days():
    case = cases.open_case(opening("objection"), WY, DEPTS, MONDAY, CAL).case
    marked = cases.take_step(case, step("mark", "WY-SJJ", outcome="own"), DEPTS, MONDAY, CAL)
    assert (marked.deadline["case_type"], marked.deadline["due_on"]) == ("objection_decide", "2026-03-16")
    assert "decides, not forwards" in refusal(marked.case, step("forward", "WY-SJJ")).reason
    decided = cases.take_step(marked.case, step("decide", "WY-SJJ", outcome="confirmed", reason="数据无误"),
                              DEPTS, MONDAY, CAL)
    assert not decided.correct and decided.case["status"] == "confirmed" and "reported back" not in decided.message


@pytest.mark.rule("R-32.1")
@pytest.mark.rule("R-30.1")
def test_an_open_request_records_its_use_and_is_answered_in_fifteen_days():
    research = {"items": ["保障类别"], "subject_id": None, "use": "public_interest_research"}
    assert cases.check_opening(opening("open_request", **research), OPEN, PARTIES, DEPTS) == []
    (p,) = cases.check_opening(opening("open_request", **research), FREE, PARTIES, DEPTS)
    assert "open unconditionally" in p.reason and p.rule_ids == ("R-32.3",)
    (p,) = cases.check_opening(opening("open_request", **research), WY, PARTIES, DEPTS)
    assert "is not open" in p.reason and p.rule_ids == ("R-30.1",)
    (p,) = cases.check_opening(opening("open_request", **{**research, "use": "commercial"}), OPEN, PARTIES, DEPTS)
    assert "competitive award" in p.reason
    (p,) = cases.check_opening(opening("open_request", **{**research, "use": "curiosity"}), OPEN, PARTIES, DEPTS)
    assert "records its use" in p.reason
    assert cases.check_opening(opening("open_request", **{**research, "use": "commercial", "award": "NJ-2026-17"}),
                               OPEN, PARTIES, DEPTS) == []
    t = cases.open_case(opening("open_request", **research), OPEN, DEPTS, MONDAY, CAL)
    assert (t.deadline["party"], t.deadline["due_on"]) == ("WY-MZ", "2026-03-23") and t.flag is None
    assert "reason and its basis" in refusal(t.case, step("answer", "WY-MZ", outcome="refused", reason="涉密")).reason
    ok = cases.take_step(t.case, step("extend", "WY-MZ", extension_days=15, approved_by="邹凯"), DEPTS, MONDAY, CAL)
    assert ok.deadline["due_on"] == "2026-04-14"  # 15 more working days, over the Qingming holiday
    refused = cases.take_step(ok.case, step("answer", "WY-MZ", outcome="refused", reason="涉及个人隐私",
                                            basis="个人信息保护法第二十八条"), DEPTS, MONDAY, CAL)
    assert refused.case["status"] == "refused" and "basis: 个人信息保护法第二十八条" in refused.message
    assert refused.grant is None
    approved = cases.take_step(ok.case, step("answer", "WY-MZ", outcome="approved"), DEPTS, MONDAY, CAL)
    assert approved.grant == {**approved.grant, "grant_id": "open:c1", "party": CITIZEN, "items": ["保障类别"],
                              "use": "public_interest_research", "revoked": False}


@pytest.mark.rule("R-32.1")
@pytest.mark.rule("R-32.3")
def test_open_data_is_requested_by_an_authenticated_party_not_a_department():
    research = {"items": ["保障类别"], "subject_id": None, "use": "public_interest_research"}
    (p,) = cases.check_opening(opening("open_request", **research), OPEN,
                               {CITIZEN: {**PARTIES[CITIZEN], "authenticated": False}}, DEPTS)
    assert "no credentials yet" in p.reason and "R-32.3" in p.rule_ids
    (p,) = cases.check_opening(opening("open_request", requester="NJ-YB", **research), OPEN, PARTIES, DEPTS)
    assert "departments receive data by sharing" in p.reason


@pytest.mark.rule("R-31.1")
def test_an_accepted_objection_to_the_open_catalog_goes_to_the_authority():
    t = cases.open_case(opening("open_catalog_objection", subject_id=None, items=[]), OPEN, DEPTS, MONDAY, CAL)
    assert (t.deadline["case_type"], t.deadline["due_on"]) == ("open_catalog_objection", "2026-03-16")
    assert "accepted or rejected" in refusal(t.case, step("answer", "WY-MZ", outcome="corrected",
                                                              reason="x")).reason
    accepted = cases.take_step(t.case, step("answer", "WY-MZ", outcome="accepted", reason="应予开放"),
                               DEPTS, MONDAY, CAL)
    assert accepted.case["status"] == "accepted" and "changes through WY-SJJ" in accepted.message


@pytest.mark.rule("R-17.2")
def test_a_party_registers_under_a_valid_identifier_once():
    ok = {"party_id": resident_id("51102519920715004"), "name": "王芳", "registered_by": "portal"}
    assert cases.check_registration(ok, PARTIES, DEPTS) == []
    assert cases.party_kind(ok["party_id"]) == "resident"
    (p,) = cases.check_registration({**ok, "party_id": CITIZEN}, PARTIES, DEPTS)
    assert "already registered (as 李梅)" in p.reason
    (p,) = cases.check_registration({**ok, "party_id": "12345"}, PARTIES, DEPTS)
    assert "valid resident identity number or unified social credit code" in p.reason
    (p,) = cases.check_registration({**ok, "party_id": "NJ-GA"}, PARTIES, DEPTS)
    assert "is a department" in p.reason


def test_the_correction_is_owed_to_each_department_once_for_its_latest_delivery():
    received = [{"subscriber": "NJ-YB", "event_id": "e1", "grant_id": "grant:r1"},
                {"subscriber": "NJ-RS", "event_id": "e2", "grant_id": "grant:r2"},
                {"subscriber": "NJ-YB", "event_id": "e3", "grant_id": "grant:r1"}]
    assert cases.owed_corrections("c1", received) == [
        {"case_id": "c1", "department": "NJ-RS", "corrects_event_id": "e2", "grant_id": "grant:r2"},
        {"case_id": "c1", "department": "NJ-YB", "corrects_event_id": "e3", "grant_id": "grant:r1"}]


@pytest.mark.rule("R-19.2")
@pytest.mark.rule("R-41.1")
def test_flags_go_on_every_delivery_of_the_datum_and_corrections_to_exactly_those_owed():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    d = delivery(publisher="WY-MZ", resource="WY-MZ-DB-001", subject=ID1, items={"姓名": "张三", "保障类别": "无"})
    feeds = feed_records(d, [Route("NJ-YB", "grant:r1", "医保", ("保障类别",)), Route("NJ-WJ", "grant:r3", None,
                                                                                    ("姓名",))], now)
    marks = {"flags": [{"case_id": "c2", "kind": "objected"}],
             "corrections": [{"case_id": "c1", "department": "NJ-YB", "corrects_event_id": "e3",
                              "grant_id": "grant:r1"},
                             {"case_id": "c1", "department": "NJ-RS", "corrects_event_id": "e2",
                              "grant_id": "grant:r2"}]}

    def correction_feed(dept, grant_id):
        return feed_records(d, [Route(dept, grant_id, None, ("保障类别",))], now)[0]

    out, sent = cases.mark_feeds(d, feeds, marks, correction_feed)
    by = {f["subscriber"]: f for f in out}
    assert set(by) == {"NJ-YB", "NJ-WJ", "NJ-RS"}
    assert by["NJ-WJ"]["flags"] == ["objected"] and by["NJ-WJ"]["correction_of"] is None  # not owed: no correction
    assert by["NJ-YB"]["flags"] == ["objected", "correction"] and by["NJ-YB"]["correction_of"] == "e3"
    assert by["NJ-YB"]["case_ids"] == ["c2", "c1"]
    assert by["NJ-RS"]["correction_of"] == "e2" and by["NJ-RS"]["items"] == {"保障类别": "无"}  # its earlier scope
    assert sent == {"c1": ["NJ-YB", "NJ-RS"]}
    assert cases.mark_feeds(d, feeds, None, correction_feed) == (feeds, {})
    assert all(f["flags"] == [] for f in feeds)  # the unmarked records are not changed in place
