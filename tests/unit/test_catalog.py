import copy

import pytest
import yaml

from streams.rules import catalog as rules
from streams.rules.workcalendar import WorkCalendar
from topics.departments import load
from topics.settings import REPO_ROOT

DEPTS = load()
SEED = REPO_ROOT / "ops" / "seed" / "catalog"
SYSTEMS = {"GA-HZ": {"department": "NJ-GA", "system_code": "GA-HZ", "stage": "registered"},
           "WY-MZ-JZ": {"department": "WY-MZ", "system_code": "WY-MZ-JZ", "stage": "registered"}}


def seed(name: str) -> dict:
    from ops.events import entry_from_file

    raw = yaml.safe_load((SEED / name).read_text(encoding="utf-8"))
    return rules.normalise_attributes(entry_from_file(raw, raw["provider"]))


def problems(entry, submitter=None, systems=SYSTEMS):
    return rules.check_entry(submitter or entry["provider"], entry, DEPTS, systems)


def rule_ids(ps) -> set[str]:
    return {r for p in ps for r in p.rule_ids}


def test_the_seed_entries_are_acceptable():
    assert problems(seed("ga-population.yaml")) == []
    assert problems(seed("wy-subsidy.yaml")) == []


@pytest.mark.rule("R-3.1")
def test_classified_resources_are_refused_outright():
    e = seed("wy-subsidy.yaml")
    e["classified"] = True
    (p,) = problems(e)
    assert p.rule_ids == ("R-3.1",) and "classified" in p.reason and "涉密" in p.reason


@pytest.mark.rule("R-11.1")
def test_missing_fields_are_named_in_the_officers_words():
    e = seed("wy-subsidy.yaml")
    e["summary"] = ""
    e["legal_basis"] = "  "
    e["update_cycle"] = "whenever"
    ps = problems(e)
    assert "R-11.1" in rule_ids(ps)
    text = " ".join(p.reason for p in ps)
    assert "资源摘要 summary" in text and "法律依据 legal basis" in text and "'whenever'" in text


@pytest.mark.rule("R-11.1")
def test_exactly_one_subject_identifier_item():
    e = seed("wy-subsidy.yaml")
    for item in e["data_items"]:
        item["subject_id"] = False
    assert any("subject identifier" in p.reason for p in problems(e))
    e["data_items"][0]["subject_id"] = e["data_items"][1]["subject_id"] = True
    assert any("found 2" in p.reason for p in problems(e))


@pytest.mark.rule("R-23.1")
def test_share_attribute_is_one_of_three():
    e = seed("wy-subsidy.yaml")
    e["share_attribute"] = "partially"
    (p,) = problems(e)
    assert p.rule_ids == ("R-23.1",)
    assert "unconditional (无条件共享), conditional (有条件共享), none (不予共享)" in p.reason


@pytest.mark.rule("R-23.1")
def test_chinese_attribute_words_are_understood():
    e = rules.normalise_attributes({"share_attribute": "有条件共享", "open_attribute": "不予开放"})
    assert e == {"share_attribute": "conditional", "open_attribute": "not_open"}


@pytest.mark.rule("R-24.1")
@pytest.mark.parametrize("attribute", ["conditional", "none"])
def test_not_sharing_freely_needs_a_cited_basis(attribute):
    e = seed("wy-subsidy.yaml")
    e["share_attribute"] = attribute
    e["share_basis"] = None
    ps = problems(e)
    assert "R-24.1" in rule_ids(ps)
    assert any("cited legal or policy basis" in p.reason for p in ps)


@pytest.mark.rule("R-24.2")
def test_basic_items_of_a_base_database_are_always_unconditional():
    e = seed("ga-population.yaml")
    e["share_attribute"] = "conditional"
    e["share_conditions"] = "only police"
    e["share_basis"] = "some rule"
    (p,) = problems(e)
    assert p.rule_ids == ("R-24.2",) and "公民身份号码" in p.reason


@pytest.mark.rule("R-30.1")
def test_open_attribute_values_and_basis():
    e = seed("wy-subsidy.yaml")
    e["open_basis"] = None
    assert "R-30.1" in rule_ids(problems(e))
    e["open_attribute"] = "maybe"
    assert any("无条件开放" in p.reason for p in problems(e))
    e["open_attribute"] = "unconditional"
    assert rule_ids(problems(e)) == {"R-29.1"}  # its personal 姓名 would be opened without a desensitization
    e["data_items"] = [{**i, "open_treatment": "mask:name"} if i.get("personal") else i for i in e["data_items"]]
    assert problems(e) == []


@pytest.mark.rule("R-15.1")
def test_base_resources_only_from_their_lead_department():
    e = seed("ga-population.yaml")
    e["provider"] = "NJ-MZ"
    systems = {**SYSTEMS, "GA-HZ": {**SYSTEMS["GA-HZ"], "department": "NJ-MZ"}}
    ps = problems(e, "NJ-MZ", systems)
    assert rule_ids(ps) == {"R-15.1"}
    assert "lead department NJ-GA" in ps[0].reason
    assert rules.lead_department("legal_entities", DEPTS) == "NJ-SCJG"
    assert rules.lead_department("geospatial", DEPTS) == "NJ-ZRZY"
    assert rules.lead_department("e_licences", DEPTS) == "NJ-ZWFW"


@pytest.mark.rule("R-12.1")
def test_a_department_submits_only_its_own_entries():
    ps = problems(seed("ga-population.yaml"), "NJ-MZ")
    assert any("NJ-MZ cannot submit an entry for NJ-GA" in p.reason for p in ps)


@pytest.mark.rule("R-13.2")
def test_the_producing_system_is_registered_first():
    ps = problems(seed("ga-population.yaml"), systems={})
    assert rule_ids(ps) == {"R-13.2"} and "not registered" in ps[0].reason
    other = {"GA-HZ": {**SYSTEMS["GA-HZ"], "department": "NJ-MZ"}}
    assert "registered to NJ-MZ" in problems(seed("ga-population.yaml"), systems=other)[0].reason


@pytest.mark.rule("R-13.2")
def test_system_registration_stages():
    reg = {"department": "NJ-GA", "system_code": "GA-NEW", "name": "x", "stage": "registered", "interfaces": [],
           "resource_codes": []}
    assert "interfaces before approval" in rules.check_system(reg, DEPTS, {})[0].reason
    reg["interfaces"] = [{"name": "i", "kind": "share", "resource_code": None}]
    assert rules.check_system(reg, DEPTS, {}) == []
    accepted = {**reg, "stage": "accepted"}
    reasons = " ".join(p.reason for p in rules.check_system(accepted, DEPTS, {}))
    assert "never registered before approval" in reasons and "resource_codes" in reasons
    accepted["resource_codes"] = ["GA-RK-001"]
    assert rules.check_system(accepted, DEPTS, {"GA-NEW": reg}) == []


@pytest.mark.rule("R-12.1")
@pytest.mark.rule("R-9.1")
def test_reviews_go_to_the_authority_of_the_submitters_level():
    assert rules.reviewer_for(DEPTS["NJ-GA"], DEPTS) == "NJ-SJJ"
    assert rules.reviewer_for(DEPTS["WY-MZ"], DEPTS) == "WY-SJJ"
    assert rules.reviewer_for(DEPTS["LC-MZ"], DEPTS) == "LC-SJJ"
    ps = rules.check_review("NJ-SJJ", "approve", None, "WY-SJJ")
    assert ps and "it is for WY-SJJ" in ps[0].reason
    assert rules.check_review("WY-SJJ", "reject", "", "WY-SJJ")[0].reason == "a rejection states its reason"
    assert rules.check_review("WY-SJJ", "approve", None, "WY-SJJ") == []


@pytest.mark.rule("R-9.1")
def test_every_county_and_zone_is_a_tenant_with_its_own_authority():
    import yaml as y

    counties = {c["code"] for c in y.safe_load((REPO_ROOT / "topics/departments.yaml").read_text())["counties"]}
    assert counties == {"SZ", "DX", "WY", "ZZ", "LC", "JKQ", "GXQ"}
    for county in counties:
        assert any(d.kind == "authority" and d.county == county for d in DEPTS.values()), county


@pytest.mark.rule("R-7.1")
def test_every_department_has_a_principal_head_and_a_data_officer():
    for d in DEPTS.values():
        assert d.head.strip() and d.data_officer.strip(), d.code


@pytest.mark.rule("R-13.1")
def test_responsibility_lists_follow_the_approved_catalog():
    ga, wy = seed("ga-population.yaml"), seed("wy-subsidy.yaml")
    entries = [{"entry": ga}, {"entry": wy}]
    lists = rules.responsibility_lists(entries)
    assert set(lists) == {"NJ-GA", "WY-MZ"}
    assert lists["NJ-GA"] == [{"resource_code": "GA-RK-001", "name": "人口基本信息", "update_cycle": "daily",
                               "system_code": "GA-HZ"}]
    moved = copy.deepcopy(wy)
    moved["resource_code"] = "WY-MZ-DB-002"
    assert [r["resource_code"] for r in rules.responsibility_lists([*entries, {"entry": moved}])["WY-MZ"]] == [
        "WY-MZ-DB-001", "WY-MZ-DB-002"]


@pytest.mark.rule("R-14.1")
def test_an_update_is_late_after_fifteen_working_days_from_the_change():
    from datetime import date

    cal = WorkCalendar()
    # change on Friday 2026-09-25: 3 days in September, National Day week off, Saturday 10-10 worked,
    # so the 15th working day after it is Thursday 2026-10-22
    update = {"kind": "update", "change_date": "2026-09-25", "entry": {"resource_code": "GA-RK-001"}}
    problems, due, late = rules.check_submission(update, {"version": 1}, date(2026, 10, 22), cal)
    assert (problems, str(due), late) == ([], "2026-10-22", False)
    assert rules.check_submission(update, {"version": 1}, date(2026, 10, 23), cal)[2] is True


@pytest.mark.rule("R-12.1")
def test_demand_lists_state_their_purpose():
    dl = {"submitter": "NJ-MZ", "items": [{"name": "低保", "provider": "WY-MZ", "purpose": ""}]}
    assert "states no purpose" in rules.check_demand_list(dl, DEPTS)[0].reason
    dl["items"][0]["purpose"] = "社会救助审核"
    assert rules.check_demand_list(dl, DEPTS) == []


@pytest.mark.rule("R-12.1")
def test_a_new_entry_is_new_and_an_update_updates_one_in_the_catalog():
    from datetime import date

    cal = WorkCalendar()
    new = {"kind": "new", "entry": {"resource_code": "GA-RK-001"}}
    assert rules.check_submission(new, None, date(2026, 11, 2), cal) == ([], None, False)
    (again,), _, _ = rules.check_submission(new, {"version": 1}, date(2026, 11, 2), cal)
    assert "already in the catalog" in again.reason and again.rule_ids == ("R-12.1",)
    update = {"kind": "update", "change_date": "2026-10-20", "entry": {"resource_code": "GA-RK-001"}}
    (missing,), _, _ = rules.check_submission(update, None, date(2026, 11, 2), cal)
    assert "not in the approved catalog" in missing.reason
    (odd,), _, _ = rules.check_submission({**new, "kind": "replace"}, None, date(2026, 11, 2), cal)
    assert "neither new nor update" in odd.reason


@pytest.mark.rule("R-14.1")
def test_an_update_names_the_change_it_follows():
    from datetime import date

    cal = WorkCalendar()
    undated = {"kind": "update", "change_date": None, "entry": {"resource_code": "GA-RK-001"}}
    (p,), due, late = rules.check_submission(undated, {"version": 1}, date(2026, 11, 2), cal)
    assert "change_date" in p.reason and p.rule_ids == ("R-14.1",) and (due, late) == (None, False)
    (bad,), _, _ = rules.check_submission({**undated, "change_date": "2026-13-01"}, {"version": 1},
                                          date(2026, 11, 2), cal)
    assert "not a date" in bad.reason
    change = {"department": "NJ-MZ", "change_kind": "law", "change_date": "2026-11-06"}
    assert rules.check_change(change, DEPTS) == ([], date(2026, 11, 6))
    problems, _ = rules.check_change({**change, "department": "XX-YY", "change_kind": "mood"}, DEPTS)
    assert len(problems) == 2 and all(p.rule_ids == ("R-14.1",) for p in problems)


@pytest.mark.rule("R-12.1")
def test_only_a_pending_submission_is_reviewed_and_approval_versions_the_entry():
    assert rules.check_review_target("s1", {"status": "pending_review"}) is None
    assert "no such submission" in rules.check_review_target("s1", None).reason
    assert "already approved" in rules.check_review_target("s1", {"status": "approved"}).reason
    entry = {"resource_code": "WY-MZ-DB-001", "name": "低保"}
    first = rules.approve(entry, None, DEPTS["WY-MZ"], approved_at="t", approved_by="WY-SJJ (姚远)",
                          submission_id="s1")
    assert (first["version"], first["level"], first["county"]) == (1, "county", DEPTS["WY-MZ"].county)
    assert rules.approve(entry, first, DEPTS["WY-MZ"], approved_at="t", approved_by="x",
                         submission_id="s2")["version"] == 2


@pytest.mark.rule("R-14.1")
@pytest.mark.rule("R-26.1")
def test_every_statutory_day_count_comes_from_the_one_table():
    from datetime import date

    from streams.rules.deadlines import PROCESSES, statutory_due

    cal = WorkCalendar()
    assert {k: p.days for k, p in PROCESSES.items() if k in ("catalog_update", "catalog_review", "share_request")} \
        == {"catalog_update": 15, "catalog_review": 10, "share_request": 10}
    assert rules.update_due(date(2026, 9, 25), cal) == statutory_due("catalog_update", date(2026, 9, 25), cal)
    assert str(statutory_due("share_request", date(2026, 9, 25), cal)) == "2026-10-15"  # 10th of the 15 above
