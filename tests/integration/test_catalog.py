"""The catalog agent against the real broker and database: submissions, reviews, roll-up,
responsibility lists and the review and update deadlines."""

import uuid
from datetime import UTC, datetime

import pytest
import yaml

from ops.events import entry_from_file
from ops.kafka_io import review_and_wait, submit_and_wait
from tests.helpers import consume, decoded, ledger_rows
from topics.settings import REPO_ROOT

SEED = REPO_ROOT / "ops" / "seed" / "catalog"


def seed(name: str) -> dict:
    return yaml.safe_load((SEED / name).read_text(encoding="utf-8"))


def system_event(dept: str, name: str) -> tuple:
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": dept,
           **seed(name), "resource_codes": []}
    return (dept.encode(), "govbus.catalog.SystemRegistration", rec)


def submission(dept: str, raw: dict, kind: str = "new", change_date: str | None = None) -> tuple:
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "submitter": dept, "kind": kind,
           "change_date": change_date, "change_reason": None, "entry": entry_from_file(raw, dept)}
    return (dept.encode(), "govbus.catalog.CatalogSubmission", rec)


def review(sub_id: str, reviewer: str, decision: str = "approve", reason: str | None = None) -> dict:
    return {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "reviewer": reviewer,
            "reviewer_person": "审核员", "submission_id": sub_id, "decision": decision, "reason": reason}


@pytest.mark.rule("R-12.1")
@pytest.mark.rule("R-9.1")
@pytest.mark.rule("R-13.1")
@pytest.mark.rule("R-13.2")
async def test_a_county_entry_is_reviewed_by_its_county_and_rolls_up(bus, workers, ledger):
    workers.start()
    (sys_decision,) = await submit_and_wait([system_event("WY-MZ", "wy-system.yaml")], 30)
    assert sys_decision["status"] == "accepted"
    sub = submission("WY-MZ", seed("wy-subsidy.yaml"))
    (pending,) = await submit_and_wait([sub], 30)
    assert pending["status"] == "pending_review" and "WY-SJJ" in pending["reasons"][0]
    sub_id = sub[2]["event_id"]

    (wrong,) = await review_and_wait(review(sub_id, "NJ-SJJ"), 30)
    assert wrong["status"] == "refused" and "it is for WY-SJJ" in wrong["reasons"][0]
    (approved,) = await review_and_wait(review(sub_id, "WY-SJJ"), 30)
    assert approved["status"] == "approved" and approved["decided_by"] == "WY-SJJ (审核员)"

    (entry,) = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.catalog"), count=1))
    assert (entry["resource_code"], entry["level"], entry["county"], entry["version"]) == (
        "WY-MZ-DB-001", "county", "WY", 1)
    lists = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.catalog.responsibilities"), count=1))
    assert lists[-1]["department"] == "WY-MZ"
    assert [r["resource_code"] for r in lists[-1]["resources"]] == ["WY-MZ-DB-001"]

    # in the ledger: in the county catalog and the city's, and on WY-MZ's responsibility list
    rows = await ledger_rows("SELECT county, provider FROM catalog_entries WHERE resource_code = 'WY-MZ-DB-001'")
    assert (rows[0]["county"], rows[0]["provider"]) == ("WY", "WY-MZ")
    rows = await ledger_rows("SELECT resource_code FROM responsibility_lists WHERE department = 'WY-MZ'")
    assert [r["resource_code"] for r in rows] == ["WY-MZ-DB-001"]

    # the review deadline was started for the county authority and answered by the approval
    commands = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), count=2))
    assert [(c["action"], c["deadline_id"]) for c in commands] == [
        ("start", f"catalog_review:{sub_id}"), ("answer", f"catalog_review:{sub_id}")]
    assert commands[0]["party"] == "WY-SJJ"


@pytest.mark.rule("R-3.1")
@pytest.mark.rule("R-15.1")
@pytest.mark.rule("R-13.2")
async def test_refused_submissions_say_why(bus, workers):
    workers.start()
    classified = {**seed("wy-subsidy.yaml"), "classified": True}
    not_lead = {**seed("ga-population.yaml"), "provider": "NJ-MZ"}
    decisions = await submit_and_wait([submission("WY-MZ", classified), submission("NJ-MZ", not_lead)], 30)
    by_dept = {d["department"]: d for d in decisions}
    assert by_dept["WY-MZ"]["status"] == "refused" and by_dept["WY-MZ"]["rule_ids"] == ["R-3.1"]
    assert by_dept["NJ-MZ"]["status"] == "refused"
    assert {"R-15.1", "R-13.2"} <= set(by_dept["NJ-MZ"]["rule_ids"])


@pytest.mark.rule("R-14.1")
async def test_a_late_update_is_recorded_as_late_and_a_change_starts_the_update_deadline(bus, workers):
    workers.start()
    await submit_and_wait([system_event("WY-MZ", "wy-system.yaml")], 30)
    sub = submission("WY-MZ", seed("wy-subsidy.yaml"))
    await submit_and_wait([sub], 30)
    await review_and_wait(review(sub[2]["event_id"], "WY-SJJ"), 30)

    change = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": "WY-MZ",
              "change_date": "2026-09-25", "change_kind": "law", "description": "修订", "reported_by": "WY-SJJ"}
    (accepted,) = await submit_and_wait([(b"WY-MZ", "govbus.catalog.CatalogChange", change)], 30)
    assert accepted["status"] == "accepted" and accepted["due_on"] == "2026-10-22"

    update = submission("WY-MZ", {**seed("wy-subsidy.yaml"), "update_cycle": "weekly"}, "update", "2026-09-25")
    (pending,) = await submit_and_wait([update], 30)
    assert pending["status"] == "pending_review" and pending["late"] is True
    assert any("late: the update was due 2026-10-22" in r for r in pending["reasons"])
    (approved,) = await review_and_wait(review(update[2]["event_id"], "WY-SJJ"), 30)
    assert approved["status"] == "approved" and approved["late"] is True

    commands = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), count=6))
    change_cmds = [(c["action"], c.get("party")) for c in commands
                   if c["deadline_id"] == f"catalog_update:{change['event_id']}"]
    assert change_cmds == [("start", "WY-MZ"), ("answer", None)]
    entries = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.catalog"), count=2))
    assert [(e["version"], e["entry"]["update_cycle"]) for e in entries] == [(1, "monthly"), (2, "weekly")]


async def test_a_replayed_inbox_changes_nothing(bus, workers):
    """A second worker reading the inbox from the start (as after a lost commit) re-sends nothing new."""
    w = workers.start()
    await submit_and_wait([system_event("WY-MZ", "wy-system.yaml")], 30)
    sub = submission("WY-MZ", seed("wy-subsidy.yaml"))
    await submit_and_wait([sub], 30)
    await review_and_wait(review(sub[2]["event_id"], "WY-SJJ"), 30)
    before = await consume(bus.settings.bootstrap, bus.topic("govbus.catalog.decisions"), count=3, settle=1)
    w.kill()
    workers.start()  # recovers the table, resumes from the committed offset
    after = await consume(bus.settings.bootstrap, bus.topic("govbus.catalog.decisions"), count=99, timeout=5)
    ids = [d["event_id"] for d in decoded(after)]
    assert len(set(ids)) == len(decoded(before)) == 3
    entries = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.catalog"), count=9, timeout=3))
    assert {e["version"] for e in entries} == {1}
