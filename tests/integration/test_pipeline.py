"""One path through every real part: publish -> agent -> feeds -> subscriber SDK -> ledger,
and bad input of every kind -> rejects topic and ledger, with the stream still going."""

import asyncio

from consumers.feed import Feed
from ops.kafka_io import subscribe
from ops.publish import publish_rows, read_rows
from schemas.codec import HEADER, MAGIC, default_codec
from tests.helpers import (
    approved_entry,
    consume,
    decoded,
    delivery,
    ledger_rows,
    produce,
    resident_id,
    seed_catalog,
)

DELIVERY = "govbus.exchange.DataDelivery"
ID1, ID2 = resident_id("51100219800101123"), resident_id("51102519920715004")


async def read_feed(department: str, count: int, timeout: float = 30.0) -> list:
    out = []

    async def go():
        async with Feed(department, group_id=f"t-{department}") as feed:
            async for rec in feed:
                out.append(rec)
                if len(out) >= count:
                    return

    await asyncio.wait_for(go(), timeout)
    return out


async def test_publication_reaches_the_subscriber_feed_and_the_ledger(bus, workers, ledger):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    csv = f"subject_id,姓名,户籍地址\n{ID1},张三,市中区\n{ID2},李四\n{ID2},王五,资中县\n".encode()
    report = await publish_rows(list(read_rows(csv, "csv")), publisher="NJ-GA", resource_code="GA-RK-001",
                                source="residents.csv", bootstrap=bus.settings.bootstrap, prefix=bus.prefix)
    assert (report.published, report.rejected) == (2, 1)

    got = await read_feed("NJ-MZ", 2)
    assert sorted(r.items["姓名"] for r in got) == ["张三", "王五"]
    assert all(r.verify() and r.publisher == "NJ-GA" and r.subscriber == "NJ-MZ" for r in got)
    assert got[0].grant_id == "subscription:GA-RK-001:NJ-MZ"

    # a department that did not subscribe receives nothing, and the publisher no echo
    assert await consume(bus.settings.bootstrap, bus.feed("NJ-RS"), count=1, timeout=3) == []
    assert await consume(bus.settings.bootstrap, bus.feed("NJ-GA"), count=1, timeout=1) == []

    ids = [r.event_id for r in got]
    rows = await ledger_rows("SELECT * FROM ledger_deliveries WHERE event_id = ANY($1)", ids, want=2)
    assert {r["publisher"] for r in rows} == {"NJ-GA"}
    fed = await ledger_rows("SELECT * FROM ledger_feed_deliveries WHERE event_id = ANY($1)", ids, want=2)
    assert {r["subscriber"] for r in fed} == {"NJ-MZ"}
    rej = await ledger_rows("SELECT * FROM ledger_rejects WHERE source_topic LIKE 'file:residents.csv#%'"
                            " AND publisher = 'NJ-GA' AND raw = $1", f"{ID2},李四\n".encode())
    assert rej[0]["code"] == "broken_row"
    assert rej[0]["reason"] == "line 3 has 2 fields, the header has 3"


async def test_bad_input_is_rejected_with_reasons_and_the_stream_keeps_going(bus, workers, ledger):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    codec = default_codec()
    sub = codec.encode("govbus.exchange.Subscription", {
        "event_id": "x", "occurred_at": delivery()["occurred_at"], "subscriber": "NJ-MZ",
        "resource_code": "R", "active": True})
    bad = [
        b"\xc3\x01\x3a",  # truncated
        b'{"subject_id": "1"}',  # wrong magic: JSON sent to an Avro topic
        MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + b"\x00",  # unknown fingerprint
        MAGIC + codec.latest[DELIVERY].fingerprint + sub[HEADER:],  # does not match its schema
        codec.encode("govbus.deadlines.Notice", {  # a valid event of a type no one sends on an inbound topic
            "notice_id": "n", "occurred_at": delivery()["occurred_at"], "kind": "started", "deadline_id": "d",
            "case_type": "share_request", "case_id": "c", "party": "NJ-MZ", "due_on": "2026-12-15",
            "provisional": False, "rule_id": "R-26.1", "message": "m"}),
        codec.encode(DELIVERY, delivery(publisher="XX-ROGUE")),  # unauthorized publisher
    ]
    good = delivery(subject=ID1)
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"), [*bad, codec.encode(DELIVERY, good)])

    got = await read_feed("NJ-MZ", 1)
    assert got[0].event_id == good["event_id"]

    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=6))
    by_code = {r["code"]: r for r in rejects}
    assert set(by_code) == {"truncated", "bad_magic", "unknown_schema", "undecodable", "wrong_schema",
                            "unknown_publisher"}
    assert "shorter than the 10-byte" in by_code["truncated"]["reason"]
    assert "0102030405060708" in by_code["unknown_schema"]["reason"]
    assert "XX-ROGUE" in by_code["unknown_publisher"]["reason"]
    assert by_code["bad_magic"]["raw"] == b'{"subject_id": "1"}'
    for r in rejects:
        assert r["source_topic"] == bus.topic("govbus.deliveries")
        assert r["source_partition"] >= 0 and r["source_offset"] >= 0

    rows = await ledger_rows("SELECT code, reason, raw FROM ledger_rejects WHERE source_topic = $1",
                             bus.topic("govbus.deliveries"), want=6)
    assert {r["code"] for r in rows} == set(by_code)
    assert {bytes(r["raw"]) for r in rows} == set(bad)


async def test_a_cancelled_subscription_stops_the_feed(bus, workers):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    await subscribe("NJ-MZ", "GA-RK-001", False)
    await subscribe("NJ-RS", "GA-RK-001", True)
    workers.start()
    codec = default_codec()
    d = delivery()
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"), [codec.encode(DELIVERY, d)])
    got = await read_feed("NJ-RS", 1)
    assert got[0].event_id == d["event_id"]
    assert await consume(bus.settings.bootstrap, bus.feed("NJ-MZ"), count=1, timeout=2) == []
