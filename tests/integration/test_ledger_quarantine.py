"""The ledger never dies on a record: what PostgreSQL refuses is set aside with its position, bytes and
error, reported on the rejects topic, and replayed once the cause is fixed; the rest flows on."""

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from consumers.queries import fetch
from ops.kafka_io import subscribe
from ops.publish import publish_rows, read_rows
from schemas.codec import default_codec
from tests.helpers import (
    approved_entry,
    consume,
    decoded,
    delivery,
    ledger_rows,
    produce,
    read_to_end,
    resident_id,
    seed_catalog,
)
from topics.settings import REPO_ROOT

pytestmark = pytest.mark.integration
DELIVERY = "govbus.exchange.DataDelivery"


def govbus(bus, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GOVBUS_KAFKA_BOOTSTRAP": bus.settings.bootstrap,
           "GOVBUS_DATABASE_URL": bus.settings.dsn, "GOVBUS_TOPIC_PREFIX": bus.prefix}
    return subprocess.run([str(Path(sys.executable).parent / "govbus"), *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=120)


@pytest.mark.rule("R-8.1")
async def test_a_record_the_database_refuses_is_set_aside_and_the_ledger_goes_on(bus, ledger):
    codec = default_codec()
    accepted = bus.topic("govbus.deliveries.accepted")
    good = [delivery(event_id=f"q-{uuid.uuid4().hex}") for _ in range(6)]
    # a publication accepted before the door refused NUL characters: jsonb cannot hold \u0000
    bad = delivery(event_id=f"q-bad-{uuid.uuid4().hex}", items={"姓名": "张\x00三"})
    values = [codec.encode(DELIVERY, d) for d in (*good[:3], bad, *good[3:])]
    await produce(bus.settings.bootstrap, accepted, values)

    ids = [d["event_id"] for d in good]
    rows = await ledger_rows("SELECT event_id FROM ledger_deliveries WHERE event_id = ANY($1)", ids, want=6)
    assert rows is not None and {r["event_id"] for r in rows} == set(ids)  # those after it too

    (q,) = await ledger_rows("SELECT * FROM ledger_quarantine WHERE source_topic = $1", accepted)
    on_topic = [r for r in await consume(bus.settings.bootstrap, accepted, count=7) if r.value == values[3]]
    assert (q["source_partition"], q["source_offset"]) == (on_topic[0].partition, on_topic[0].offset)
    assert bytes(q["raw"]) == values[3]
    assert q["record_type"] == DELIVERY and q["target_table"] == "ledger_deliveries"
    assert q["error_class"] == "UntranslatableCharacterError" and q["replayed_at"] is None
    assert "govbus ledger replay" in q["reason"] and f"{accepted}:{q['source_partition']}" in q["reason"]

    # the publisher and the operator see it on the rejects topic too, with the same position
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=1, timeout=30),
                      "govbus.ops.Reject")
    (rej,) = [r for r in rejects if r["code"] == "ledger_refused"]
    assert rej["reject_id"] == f"{accepted}:{q['source_partition']}:{q['source_offset']}"
    assert rej["original_event_id"] == bad["event_id"] and rej["raw"] == values[3] and rej["rule_ids"] == ["R-8.1"]

    # every accepted record is accounted for: in the ledger or in quarantine
    in_ledger = await fetch(bus.settings.dsn, "SELECT count(*) AS n FROM ledger_deliveries WHERE event_id = ANY($1)",
                            [*ids, bad["event_id"]])
    assert in_ledger[0]["n"] + 1 == len(await read_to_end(bus.settings.bootstrap, accepted))

    # a record that can never be stored stays in quarantine, with why, when replayed
    res = govbus(bus, "ledger", "replay", str(q["quarantine_id"]))
    assert res.returncode == 1 and "still refused" in res.stderr
    (again,) = await fetch(bus.settings.dsn, "SELECT * FROM ledger_quarantine WHERE quarantine_id = $1",
                           q["quarantine_id"])
    assert again["replayed_at"] is None and "UntranslatableCharacterError" in again["replay_error"]


@pytest.mark.rule("R-8.1")
async def test_set_aside_records_are_replayed_once_the_cause_is_fixed(bus, workers, ledger):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    await subscribe("NJ-MZ", "GA-RK-001", True)
    workers.start()
    seq = [f"{n:03d}" for n in random.sample(range(1000), 5)]
    refused, *others = [resident_id(f"51100219900101{s}") for s in seq]
    name = f"refuse_{uuid.uuid4().hex[:8]}"
    # a rule of the database, added by someone, that this one record breaks
    await fetch(bus.settings.dsn, f"ALTER TABLE ledger_deliveries ADD CONSTRAINT {name}"
                f" CHECK (subject_id <> '{refused}') NOT VALID")
    try:
        csv = "subject_id,姓名\n" + "".join(f"{s},某人\n" for s in [*others[:2], refused, *others[2:]])
        report = await publish_rows(list(read_rows(csv.encode(), "csv")), publisher="NJ-GA",
                                    resource_code="GA-RK-001", source="r.csv", bootstrap=bus.settings.bootstrap,
                                    prefix=bus.prefix)
        assert report.published == 5
        accepted = bus.topic("govbus.deliveries.accepted")
        (q,) = await ledger_rows("SELECT * FROM ledger_quarantine WHERE source_topic = $1", accepted)
        assert q["error_class"] == "CheckViolationError"
        rows = await ledger_rows("SELECT subject_id FROM ledger_deliveries WHERE subject_id = ANY($1)", others,
                                 want=4)
        assert rows is not None and len(rows) == 4
        # the feed deliveries of the refused publication were not held back with it
        fed = await ledger_rows("SELECT 1 FROM ledger_feed_deliveries WHERE subject_id = $1", refused)
        assert fed is not None

        listed = govbus(bus, "ledger", "quarantine")
        assert listed.returncode == 0 and f"#{q['quarantine_id']} " in listed.stdout and name in listed.stdout
    finally:
        await fetch(bus.settings.dsn, f"ALTER TABLE ledger_deliveries DROP CONSTRAINT {name}")

    res = govbus(bus, "ledger", "replay", str(q["quarantine_id"]))
    assert res.returncode == 0, res.stderr
    assert "replayed 1 record(s)" in res.stdout
    n = await fetch(bus.settings.dsn, "SELECT count(*) AS n FROM ledger_deliveries WHERE subject_id = ANY($1)",
                    [refused, *others])
    assert n[0]["n"] == len(await read_to_end(bus.settings.bootstrap, accepted)) == 5
    (done,) = await fetch(bus.settings.dsn, "SELECT replayed_at FROM ledger_quarantine WHERE quarantine_id = $1",
                          q["quarantine_id"])
    assert done["replayed_at"] is not None
    assert f"#{q['quarantine_id']} " not in govbus(bus, "ledger", "quarantine").stdout
    # asked again, or for a number never given, it says so instead of replaying nothing in silence
    again = govbus(bus, "ledger", "replay", str(q["quarantine_id"]), "99999999")
    assert again.returncode == 1 and "replayed 0 record(s)" in again.stdout
    for qid in (q["quarantine_id"], 99999999):
        assert f"#{qid} is not waiting in quarantine (no such record, or replayed already)" in again.stderr


async def test_a_publication_no_store_can_hold_is_refused_at_the_door(bus, workers):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    workers.start()
    d = delivery(items={"姓名": "张\x00三"})
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"), [default_codec().encode(DELIVERY, d)])
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=1, timeout=60),
                      "govbus.ops.Reject")
    assert [(r["code"], r["original_event_id"]) for r in rejects] == [("unstorable_value", d["event_id"])]
    assert "NUL" in rejects[0]["reason"]
    assert await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=1, timeout=3) == []
