"""Cases against the real broker: a citizen's verification from request to correction, the flags on feeds while a
case is open, the correction reaching exactly the departments that had the old value, each deadline met, breached
or extended through the deadline service on a clock the test moves, and bad case input refused."""

import asyncio
import random
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ops import events
from ops.kafka_io import send_case, subscribe
from schemas.codec import default_codec
from streams.rules.deadlines import statutory_due
from streams.rules.workcalendar import WorkCalendar
from tests.helpers import (
    Deadlines,
    approved_entry,
    consume,
    decoded,
    delivery,
    eventually,
    govbus_on,
    ledger_rows,
    notices,
    produce,
    resident_id,
    seed_catalog,
)

pytestmark = pytest.mark.integration
CODEC = default_codec()
RESOURCE = "MZ-JZ-001"
MZ = approved_entry("wy-subsidy.yaml", resource_code=RESOURCE, provider="NJ-MZ", system_code="MZ-JZ",
                    share_attribute="unconditional",
                    data_items=[{"name": "公民身份号码", "type": "identifier", "subject_id": True},
                                {"name": "姓名", "type": "string", "personal": True},
                                {"name": "救助类别", "type": "string"}])
CITIZEN = resident_id("51102519920715004")


def someone() -> str:
    """A subject of this test only: the ledger the tests share holds other tests' deliveries too."""
    month, region, serial = random.randrange(1, 13), random.randrange(10**4), random.randrange(10**3)
    return resident_id(f"51{region:04d}1975{month:02d}15{serial:03d}")


async def publish(bus, subject: str, category: str) -> dict:
    rec = delivery(publisher="NJ-MZ", resource=RESOURCE, subject=subject, items={"姓名": "张三", "救助类别": category})
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                  [CODEC.encode("govbus.exchange.DataDelivery", rec)], key=subject.encode())
    return rec


async def feed(bus, dept: str, n: int, timeout: float = 30) -> list[dict]:
    async def check():
        got = decoded(await consume(bus.settings.bootstrap, bus.feed(dept), count=10**6, timeout=0.5))
        return got if len(got) >= n else None

    return await eventually(check, timeout=timeout) or []


async def received(bus, dept: str, publication: dict) -> dict | None:
    """The feed record of `dept` for one publication, once it is there (None if it never comes)."""
    async def check():
        got = decoded(await consume(bus.settings.bootstrap, bus.feed(dept), count=10**6, timeout=0.5))
        return next((r for r in got if r["event_id"] == publication["event_id"]), None)

    return await eventually(check, timeout=30)


async def case(schema: str, rec: dict, case_id: str | None = None) -> dict:
    (answer,) = await send_case(schema, rec, case_id or rec["event_id"], 30)
    return answer


async def step(case_id: str, action: str, actor: str, **fields) -> dict:
    return await case("govbus.cases.CaseStep", events.case_step(case_id, action, actor, fields.pop("person", "何娟"),
                                                                **fields), case_id)


async def register(party_id: str = CITIZEN) -> dict:
    return await case("govbus.cases.PartyRegistration", events.party_registration(party_id, "李梅", "portal"),
                      f"party:{party_id}")


async def authenticate(party_id: str = CITIZEN) -> dict:
    """What `govbus party credentials` tells the case agent once the party's credentials are issued."""
    return await case("govbus.cases.PartyCredentials", events.party_credentials(party_id, "NJ-SJJ"),
                      f"party:{party_id}")


async def opened(rec: dict) -> str:
    answer = await case("govbus.cases.CaseOpening", rec)
    assert answer["step"] == "opened", answer["message"]
    return answer["case_id"]


async def case_events(bus, case_id: str) -> list[dict]:
    return [e for e in decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.cases"), count=10**6,
                                             timeout=1)) if e["case_id"] == case_id]


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-19.2")
async def test_a_citizens_verification_from_request_to_the_correction_on_every_past_recipients_feed(
        bus, workers, ledger):
    subject, other = someone(), someone()
    await seed_catalog(bus, MZ)
    for dept in ("NJ-YB", "NJ-RS"):
        await subscribe(dept, RESOURCE, True)
    workers.start()
    old = await publish(bus, subject, "城市低保")
    await publish(bus, other, "城市低保")
    assert len(await feed(bus, "NJ-YB", 2)) == 2 and len(await feed(bus, "NJ-RS", 2)) == 2
    assert await ledger_rows("SELECT 1 FROM ledger_feed_deliveries WHERE subject_id = $1", subject, want=2)

    assert (await register())["step"] == "registered"
    opened = await case("govbus.cases.CaseOpening", events.case_opening(
        "verification", CITIZEN, RESOURCE, "我已于2月停止领取低保", subject_id=subject, items=["救助类别"]))
    case_id = opened["case_id"]
    assert (opened["step"], opened["party"], opened["deadline_id"]) == ("opened", "NJ-MZ", f"verification:{case_id}")

    # while it is open, every delivery of that datum is flagged and none is held back; other subjects are not
    during = await publish(bus, subject, "城市低保")
    unrelated = await publish(bus, other, "城市低保")
    flagged = await received(bus, "NJ-YB", during)
    assert flagged["flags"] == ["under_verification"] and flagged["case_ids"] == [case_id]
    assert (await received(bus, "NJ-RS", during))["flags"] == ["under_verification"]
    assert (await received(bus, "NJ-YB", unrelated))["flags"] == []

    # NJ-RS stops receiving the resource, NJ-WJ starts: the one had the old value, the other never did
    await subscribe("NJ-RS", RESOURCE, False)
    await subscribe("NJ-WJ", RESOURCE, True)
    assert await ledger_rows("SELECT 1 FROM ledger_feed_deliveries WHERE subject_id = $1", subject, want=4)
    wrong = await step(case_id, "answer", "NJ-YB", outcome="corrected", reason="x", person="彭静")
    assert wrong["step"] == "refused" and "is for NJ-MZ, not NJ-YB" in wrong["message"]
    answered = await step(case_id, "answer", "NJ-MZ", outcome="corrected", reason="低保已于2月停发")
    assert answered["status"] == "corrected" and answered["recipients"] == ["NJ-RS", "NJ-YB"]

    # the provider republishes: the corrected datum reaches both past recipients as the correction of what each
    # had, NJ-WJ receives it as an ordinary delivery, and the flag is gone
    await asyncio.sleep(1)
    corrected = await publish(bus, subject, "无")
    for dept in ("NJ-YB", "NJ-RS"):
        got = await received(bus, dept, corrected)
        assert got["items"]["救助类别"] == "无" and got["flags"] == ["correction"] and got["case_ids"] == [case_id]
        assert got["correction_of"] == during["event_id"]  # the latest delivery each had of the datum
    wj = await received(bus, "NJ-WJ", corrected)
    assert wj["flags"] == [] and wj["correction_of"] is None
    assert old["event_id"] != during["event_id"]

    async def sent():
        return [e for e in await case_events(bus, case_id) if e["step"] == "correction_sent"]

    (done,) = await eventually(sent)
    assert done["recipients"] == ["NJ-RS", "NJ-YB"]
    rows = await ledger_rows("SELECT step, actor, recipients FROM case_events WHERE case_id = $1 ORDER BY occurred_at",
                             case_id, want=4)
    assert [(r["step"], r["actor"]) for r in rows] == [("opened", CITIZEN), ("refused", "NJ-YB"),
                                                        ("answered", "NJ-MZ"), ("correction_sent", "govbus")]
    assert rows[-1]["recipients"] == ["NJ-RS", "NJ-YB"]  # the record says who was sent the correction
    # owed once: the next publication is an ordinary one again, and NJ-RS no longer receives the resource
    after = await publish(bus, subject, "无")
    assert (await received(bus, "NJ-YB", after))["flags"] == []
    await asyncio.sleep(2)
    assert len(await feed(bus, "NJ-RS", 5)) == 5  # two before the case, two while it was open, the correction

    deadlines = Deadlines(bus, [datetime.now(UTC).isoformat()])
    await deadlines.start()
    try:
        assert await notices(bus, "closed", 1)
    finally:
        await deadlines.stop()
    shown = govbus_on(bus, bus.settings.dsn, "case", "show", case_id)
    assert shown.returncode == 0, shown.stderr
    assert "correction sent to: NJ-RS, NJ-YB" in shown.stdout and "answered by NJ-MZ (何娟)" in shown.stdout
    assert f"verification:{case_id}: NJ-MZ by " in shown.stdout and " answered" in shown.stdout


@pytest.mark.rule("R-41.1")
async def test_an_objection_flags_its_datum_once_marked_and_is_decided_by_the_department_it_is_forwarded_to(
        bus, workers, ledger):
    subject = someone()
    await seed_catalog(bus, MZ)
    await subscribe("NJ-YB", RESOURCE, True)
    workers.start()
    await publish(bus, subject, "城市低保")
    await feed(bus, "NJ-YB", 1)
    await register()
    opened = await case("govbus.cases.CaseOpening", events.case_opening(
        "objection", CITIZEN, RESOURCE, "救助类别有误", subject_id=subject, items=["救助类别"]))
    case_id = opened["case_id"]
    assert (opened["party"], opened["deadline_id"]) == ("NJ-SJJ", f"objection_mark:{case_id}")
    early = await step(case_id, "decide", "NJ-MZ", outcome="corrected", reason="x")
    assert early["step"] == "refused" and "not marked yet" in early["message"]
    before = await publish(bus, subject, "城市低保")
    assert (await received(bus, "NJ-YB", before))["flags"] == []  # received, not yet marked

    marked = await step(case_id, "mark", "NJ-SJJ", person="李静")
    assert (marked["status"], marked["deadline_id"]) == ("marked", f"objection_forward:{case_id}")
    during = await publish(bus, subject, "城市低保")
    assert (await received(bus, "NJ-YB", during))["flags"] == ["objected"]
    forwarded = await step(case_id, "forward", "NJ-SJJ", person="李静")
    assert (forwarded["party"], forwarded["deadline_id"]) == ("NJ-MZ", f"objection_forwarded_decide:{case_id}")
    decided = await step(case_id, "decide", "NJ-MZ", outcome="confirmed", reason="经核实数据无误")
    assert decided["status"] == "confirmed" and f"{CITIZEN} is told the outcome" in decided["message"]
    assert "reported back to NJ-SJJ" in decided["message"] and decided["recipients"] == []
    after = await publish(bus, subject, "城市低保")
    last = await received(bus, "NJ-YB", after)
    assert last["flags"] == [] and last["correction_of"] is None  # confirmed: no correction

    listed = govbus_on(bus, bus.settings.dsn, "case", "list", "--party", CITIZEN)
    assert listed.returncode == 0 and f"{case_id}  objection  confirmed  {CITIZEN}" in listed.stdout


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-32.1")
@pytest.mark.rule("R-41.1")
@pytest.mark.rule("R-7.1")
async def test_each_deadline_met_breached_or_extended_once_with_the_heads_approval(bus, workers):
    open_entry = approved_entry("wy-subsidy.yaml", resource_code="MZ-KF-001", provider="NJ-MZ", system_code="MZ-JZ",
                                open_attribute="有条件开放", open_conditions="公益研究",
                                open_basis="《政务数据资源管理暂行办法》第三十二条")
    await seed_catalog(bus, MZ, open_entry)
    workers.start()
    await register()
    assert (await authenticate())["step"] == "credentials"  # open requests come from authenticated parties
    subject = someone()
    verification = await opened(events.case_opening(
        "verification", CITIZEN, RESOURCE, "姓名有误", subject_id=subject, items=["姓名"]))
    objection = await opened(events.case_opening(
        "objection", CITIZEN, RESOURCE, "救助类别有误", subject_id=subject, items=["救助类别"]))
    request = await opened(events.case_opening(
        "open_request", CITIZEN, "MZ-KF-001", "低保政策效果研究", items=["保障类别"],
        use="public_interest_research"))

    no_head = await step(verification, "extend", "NJ-MZ", extension_days=10, approved_by="何娟")
    assert no_head["step"] == "refused" and "principal head of NJ-MZ, 黄伟" in no_head["message"]
    extended = await step(verification, "extend", "NJ-MZ", extension_days=10, approved_by="黄伟")
    assert extended["step"] == "extended"
    again = await step(verification, "extend", "NJ-MZ", extension_days=1, approved_by="黄伟")
    assert again["step"] == "refused" and "one extension only" in again["message"]
    no_extension = await step(objection, "extend", "NJ-SJJ", extension_days=1, approved_by="张立新")
    assert no_extension["step"] == "refused" and "cannot be extended" in no_extension["message"]
    assert (await step(objection, "mark", "NJ-SJJ", person="李静"))["status"] == "marked"  # met

    received = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    cal = WorkCalendar()
    mark_due = statutory_due("objection_mark", received, cal).due
    request_due = statutory_due("open_request", received, cal).due
    verification_due = cal.add_working_days(statutory_due("verification", received, cal).due, 10).due
    clock = [datetime.now(UTC).isoformat()]
    deadlines = Deadlines(bus, clock)
    await deadlines.start()
    try:
        assert len(await notices(bus, "extended", 1)) == 1
        # the working day after the open request was due, before the extended verification is
        clock[0] = f"{cal.add_working_days(request_due, 1).due.isoformat()}T09:00:00+08:00"
        breaches = await notices(bus, "breach", 2)
        assert {n["deadline_id"] for n in breaches} == {f"open_request:{request}",
                                                          f"objection_forward:{objection}"}
        assert request_due < verification_due and mark_due < request_due
        clock[0] = f"{cal.add_working_days(verification_due, 1).due.isoformat()}T09:00:00+08:00"
        breaches = await notices(bus, "breach", 3)
        (late,) = [n for n in breaches if n["deadline_id"] == f"verification:{verification}"]
        assert late["due_on"] == verification_due.isoformat()
        assert not [n for n in breaches if n["deadline_id"] == f"objection_mark:{objection}"]  # marked in time
    finally:
        await deadlines.stop()
    overdue = govbus_on(bus, bus.settings.dsn, "case", "list", "--overdue")
    assert overdue.returncode == 0
    assert {line.split()[0] for line in overdue.stdout.splitlines()} == {verification, objection, request}


async def test_bad_case_input_is_refused_with_a_reason_and_changes_nothing(bus, workers):
    await seed_catalog(bus, MZ)
    workers.start()
    unknown = await step("no-such-case", "answer", "NJ-MZ", outcome="confirmed")
    assert unknown["step"] == "refused" and "there is no case no-such-case" in unknown["message"]
    invalid = await case("govbus.cases.CaseOpening", events.case_opening(
        "verification", "511025199207150040", RESOURCE, "x", subject_id=someone(), items=["姓名"]))
    assert invalid["step"] == "refused" and "check digit" in invalid["message"]
    bad_party = await register("12345")
    assert bad_party["step"] == "refused" and "valid resident identity number" in bad_party["message"]
    unregistered = await case("govbus.cases.CaseOpening", events.case_opening(
        "verification", CITIZEN, RESOURCE, "x", subject_id=someone(), items=["姓名"]))
    assert unregistered["step"] == "refused" and "is not registered" in unregistered["message"]

    await register()
    rec = events.case_opening("verification", CITIZEN, RESOURCE, "姓名有误", subject_id=someone(), items=["姓名"])
    opened = await case("govbus.cases.CaseOpening", rec)
    await produce(bus.settings.bootstrap, bus.topic("govbus.cases.inbox"),
                  [CODEC.encode("govbus.cases.CaseOpening", rec), b"\xc3\x01garbage"], key=rec["event_id"].encode())
    answer = events.case_step(opened["case_id"], "answer", "NJ-MZ", "何娟", outcome="confirmed")
    await case("govbus.cases.CaseStep", answer, opened["case_id"])
    late = await step(opened["case_id"], "answer", "NJ-MZ", outcome="corrected", reason="再改")
    assert late["step"] == "refused" and "is closed (confirmed)" in late["message"]

    async def rejected():
        return decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=10**6, timeout=1))

    (reject,) = await eventually(rejected)
    assert reject["source_topic"] == bus.topic("govbus.cases.inbox") and reject["code"] in ("unknown_schema",
                                                                                            "truncated")
    steps = [e["step"] for e in await case_events(bus, opened["case_id"])]
    assert steps == ["opened", "answered", "refused"]  # the repeated opening changed nothing
    commands = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), count=10**6,
                                     timeout=1))
    assert [(c["action"], c["deadline_id"]) for c in commands] == [
        ("start", f"verification:{opened['case_id']}"), ("answer", f"verification:{opened['case_id']}")]
    assert uuid.UUID(opened["case_id"])  # the case id is the opening's event id
