"""The exchange against the real broker: one source, valid subjects, directed authorizations
with projection, revocation, disputes, duplicate collection, and the ledger of who received what."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from consumers.feed import Feed
from ops.kafka_io import send_share, subscribe
from schemas.codec import default_codec
from tests.helpers import (
    approved_entry,
    consume,
    decoded,
    delivery,
    eventually,
    ledger_rows,
    produce,
    resident_id,
    seed_catalog,
)
from topics.settings import kafka_options

DELIVERY = "govbus.exchange.DataDelivery"
ID1, ID2 = resident_id("51102419751230567"), resident_id("51102519920715004")
GA = approved_entry("ga-population.yaml")
WY = approved_entry("wy-subsidy.yaml")
MZ = approved_entry("wy-subsidy.yaml", resource_code="MZ-JZ-001", provider="NJ-MZ", system_code="MZ-JZ",
                    share_attribute="unconditional",
                    data_items=[{"name": "公民身份号码", "type": "identifier", "subject_id": True},
                                {"name": "姓名", "type": "string"}, {"name": "户籍地址", "type": "string"},
                                {"name": "救助类别", "type": "string"}])


def wy(subject: str, **items) -> dict:
    return delivery(publisher="WY-MZ", resource="WY-MZ-DB-001", subject=subject,
                    items={"姓名": "张三", "保障类别": "城市低保", "月救助金额": 650.0, **items})


async def publish(bus, *records: dict) -> None:
    codec = default_codec()
    for r in records:  # one at a time and in order, as a department's system would
        await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"), [codec.encode(DELIVERY, r)],
                      key=r["subject_id"].encode())


async def feed_of(bus, dept: str, settle: float = 3.0) -> list[dict]:
    return decoded(await consume(bus.settings.bootstrap, bus.feed(dept), count=10**6, timeout=settle))


async def share(schema: str, about: str, **fields) -> list[dict]:
    """Send a sharing event about a request (none for a new request) and return the answer."""
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), **fields}
    return await send_share(schema, rec, about or rec["event_id"], 30)


def request_fields(requester: str, items: list[str], subjects=(), until: date | None = None) -> dict:
    return {"requester": requester, "resource_code": "WY-MZ-DB-001", "purpose": "医保救助衔接", "items": items,
            "subjects": list(subjects), "valid_from": (date.today() - timedelta(days=1)).isoformat(),
            "valid_until": (until or date.today() + timedelta(days=365)).isoformat()}


async def wait_feed(bus, dept: str, n: int) -> list[dict]:
    async def check():
        got = await feed_of(bus, dept, settle=0.5)
        return got if len(got) >= n else None

    return await eventually(check, timeout=30) or []


@pytest.mark.rule("R-10.1")
@pytest.mark.rule("R-17.1")
@pytest.mark.rule("R-17.2")
async def test_refused_deliveries_and_the_one_source_alert(bus, workers, ledger):
    await seed_catalog(bus, GA)
    workers.start()
    await publish(bus,
                  delivery(resource="GA-XX-999", subject=ID1),  # not catalogued
                  delivery(publisher="NJ-MZ", subject=ID1),  # not the registered source
                  delivery(subject="51102419751230567X"),  # 19 characters
                  delivery(subject="511024197513305670"),  # month 13
                  delivery(subject=ID1, items={"血型": "A"}),  # not a catalogued item
                  delivery(subject=ID1))  # fine
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=5))
    codes = sorted(r["code"] for r in rejects)
    assert codes == ["invalid_identifier", "invalid_identifier", "items_mismatch", "one_source_violation",
                     "unknown_resource"]
    by_code = {r["code"]: r for r in rejects}
    assert by_code["one_source_violation"]["rule_ids"] == ["R-17.1"]
    assert "one registered source is NJ-GA" in by_code["one_source_violation"]["reason"]
    (alert,) = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=1))
    assert (alert["kind"], alert["department"], alert["source_department"]) == (
        "one_source_violation", "NJ-MZ", "NJ-GA")
    accepted = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=1))
    assert [a["subject_id"] for a in accepted] == [ID1]


@pytest.mark.rule("R-26.1")
@pytest.mark.rule("R-26.2")
@pytest.mark.rule("R-8.1")
@pytest.mark.rule("R-28.1")
async def test_a_department_sees_exactly_its_granted_scope_before_after_and_after_revocation(bus, workers, ledger):
    await seed_catalog(bus, WY)
    await subscribe("NJ-YB", "WY-MZ-DB-001", True)  # a subscription alone opens nothing conditional
    workers.start()
    await publish(bus, wy(ID1))  # before any grant
    await asyncio.sleep(2)
    assert await feed_of(bus, "NJ-YB") == []

    (pending,) = await share("govbus.sharing.ShareRequest", "", **request_fields("NJ-YB", ["姓名", "保障类别"]))
    assert pending["status"] == "pending" and pending["rule_ids"] == ["R-26.1"]
    req_id = pending["request_id"]
    commands = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), count=1))
    assert (commands[0]["deadline_id"], commands[0]["party"]) == (f"share_request:{req_id}", "WY-MZ")

    (bad,) = await share("govbus.sharing.ShareAnswer", req_id, request_id=req_id, provider="WY-MZ", person="熊燕",
                         decision="refuse", reason="涉及隐私", basis=None, items=[])
    assert bad["status"] == "rejected" and "reason and its basis" in bad["reasons"][0]
    (approved,) = await share("govbus.sharing.ShareAnswer", req_id, request_id=req_id, provider="WY-MZ",
                              person="熊燕", decision="approve", reason=None, basis=None, items=[])
    assert approved["status"] == "approved"
    grant_id = approved["grant_id"]

    await publish(bus, wy(ID2))
    (got,) = await wait_feed(bus, "NJ-YB", 1)
    assert got["items"] == {"姓名": "张三", "保障类别": "城市低保"}  # no 月救助金额
    assert (got["grant_id"], got["purpose"], got["subject_id"]) == (grant_id, "医保救助衔接", ID2)
    assert await feed_of(bus, "NJ-RS", settle=1) == []  # no grant, nothing
    async with Feed("NJ-YB", group_id="yb") as feed:
        async for rec in feed:
            assert rec.verify()  # the digest covers exactly what was delivered
            break

    (revoked,) = await share("govbus.sharing.GrantRevocation", req_id, grant_id=grant_id, by="WY-MZ",
                             person="熊燕", reason="合作结束")
    assert revoked["status"] == "revoked"
    await publish(bus, wy(ID1, 姓名="李四"))  # the very next delivery after the revocation
    await asyncio.sleep(3)
    assert len(await feed_of(bus, "NJ-YB")) == 1

    rows = await ledger_rows("SELECT subscriber, grant_id, purpose FROM ledger_feed_deliveries WHERE grant_id = $1",
                             grant_id)
    assert [(r["subscriber"], r["purpose"]) for r in rows] == [("NJ-YB", "医保救助衔接")]


@pytest.mark.rule("R-26.2")
async def test_a_grant_limited_to_subjects_and_an_expired_grant(bus, workers):
    await seed_catalog(bus, WY)
    workers.start()
    (p1,) = await share("govbus.sharing.ShareRequest", "", **request_fields("NJ-YB", ["姓名"], subjects=[ID1]))
    await share("govbus.sharing.ShareAnswer", p1["request_id"], request_id=p1["request_id"], provider="WY-MZ",
                person="熊燕", decision="approve", reason=None, basis=None, items=[])
    (p2,) = await share("govbus.sharing.ShareRequest", "",
                        **request_fields("NJ-RS", ["姓名"], until=date.today() - timedelta(days=1)))
    assert p2["status"] == "pending"
    await share("govbus.sharing.ShareAnswer", p2["request_id"], request_id=p2["request_id"], provider="WY-MZ",
                person="熊燕", decision="approve", reason=None, basis=None, items=[])
    await publish(bus, wy(ID1), wy(ID2))
    got = await wait_feed(bus, "NJ-YB", 1)
    await asyncio.sleep(2)
    assert [g["subject_id"] for g in await feed_of(bus, "NJ-YB")] == [ID1] == [g["subject_id"] for g in got]
    assert await feed_of(bus, "NJ-RS", settle=1) == []


@pytest.mark.rule("R-25.1")
@pytest.mark.rule("R-26.1")
async def test_a_refusal_disputed_and_overturned_by_the_authority(bus, workers):
    await seed_catalog(bus, WY)
    workers.start()
    (p,) = await share("govbus.sharing.ShareRequest", "", **request_fields("NJ-YB", ["姓名", "保障类别"]))
    req_id = p["request_id"]
    (refused,) = await share("govbus.sharing.ShareAnswer", req_id, request_id=req_id, provider="WY-MZ",
                             person="熊燕", decision="refuse", reason="涉及隐私",
                             basis="《社会救助暂行办法》第五十九条", items=[])
    assert refused["status"] == "refused" and "basis" in refused["reasons"][0]
    (disputed,) = await share("govbus.sharing.Dispute", req_id, request_id=req_id, by="NJ-YB",
                              reason="医保救助衔接属法定职责")
    assert disputed["status"] == "disputed" and "WY-SJJ decides" in disputed["reasons"][0]
    (wrong,) = await share("govbus.sharing.DisputeRuling", req_id, request_id=req_id, authority="NJ-SJJ",
                           person="张立新", ruling="overturn", reason="x")
    assert wrong["status"] == "rejected"
    (ruled,) = await share("govbus.sharing.DisputeRuling", req_id, request_id=req_id, authority="WY-SJJ",
                           person="姚远", ruling="overturn", reason="属于共享范围")
    assert ruled["status"] == "overturned" and ruled["grant_id"]
    await publish(bus, wy(ID1))
    (got,) = await wait_feed(bus, "NJ-YB", 1)
    assert got["grant_id"] == ruled["grant_id"] and set(got["items"]) == {"姓名", "保障类别"}


@pytest.mark.rule("R-23.1")
async def test_a_no_share_resource_never_leaves_its_provider(bus, workers):
    await seed_catalog(bus, approved_entry("wy-subsidy.yaml", share_attribute="不予共享"))
    await subscribe("NJ-YB", "WY-MZ-DB-001", True)
    workers.start()
    (p,) = await share("govbus.sharing.ShareRequest", "", **request_fields("NJ-YB", ["姓名"]))
    assert p["status"] == "rejected" and "is not shared" in p["reasons"][0]
    await publish(bus, wy(ID1))
    await asyncio.sleep(2)
    assert await feed_of(bus, "NJ-YB") == []
    assert len(decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=1))) == 1


@pytest.mark.rule("R-17.3")
@pytest.mark.rule("R-45.1")
@pytest.mark.rule("R-27.1")
@pytest.mark.rule("R-48.1")
async def test_the_same_items_about_the_same_person_from_two_departments_raise_one_alert(bus, workers, ledger):
    await seed_catalog(bus, GA, MZ)
    workers.start()
    await publish(bus, delivery(subject=ID1, items={"姓名": "张三", "户籍地址": "市中区"}))
    mz = dict(publisher="NJ-MZ", resource="MZ-JZ-001", subject=ID1, system_code="MZ-JZ")
    await publish(bus, delivery(**mz, items={"姓名": "张三", "户籍地址": "东兴区", "救助类别": "临时"}),
                  delivery(**mz, items={"姓名": "张三", "户籍地址": "东兴区", "救助类别": "临时"}))
    alerts = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=2))
    assert {a["alert_id"] for a in alerts} == {alerts[0]["alert_id"]}  # one finding
    a = alerts[0]
    assert (a["kind"], a["department"], a["source_department"], a["system_code"], a["items"]) == (
        "duplicate_collection", "NJ-MZ", "NJ-GA", "MZ-JZ", ["姓名", "户籍地址"])

    (row,) = await ledger_rows("SELECT * FROM alert_summary WHERE alert_id = $1", a["alert_id"])
    assert row["subjects_count"] == 1 and row["department"] == "NJ-MZ"

    # NJ-MZ receives GA-RK-001 and passes the very same values on as its own
    await subscribe("NJ-MZ", "GA-RK-001", True)
    await asyncio.sleep(1)
    await publish(bus, delivery(**{**mz, "subject": ID1}, items={"姓名": "张三", "户籍地址": "市中区"}))

    async def republished():
        got = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=10, timeout=1))
        return [x for x in got if x["kind"] == "republication"]

    (rep,) = await eventually(republished, timeout=30)
    assert rep["rule_ids"] == ["R-27.1", "R-48.1"]


async def test_successive_updates_of_one_subject_reach_the_feed_in_the_order_they_were_published(bus, workers):
    """Batches are judged while earlier ones are still being acknowledged: a subject's updates still
    reach the accepted log and every feed in publication order."""
    await seed_catalog(bus, GA)
    await subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    codec, sent = default_codec(), []
    p = AIOKafkaProducer(bootstrap_servers=bus.settings.bootstrap, **kafka_options(), acks="all", linger_ms=0)
    await p.start()
    try:
        for n in range(300):  # a steady stream: many small batches, several in flight at once
            r = delivery(subject=ID1, items={"姓名": "张三", "户籍地址": f"第{n}号"})
            await p.send(bus.topic("govbus.deliveries"), key=ID1.encode(), value=codec.encode(DELIVERY, r))
            sent.append(r["event_id"])
            if n % 10 == 9:
                await asyncio.sleep(0.005)
        await p.flush()
    finally:
        await p.stop()
    fed = await wait_feed(bus, "NJ-MZ", len(sent))
    assert [f["event_id"] for f in fed] == sent
    accepted = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=len(sent)))
    assert [a["event_id"] for a in accepted] == sent
