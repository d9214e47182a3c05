"""The ledger as evidence: append-only for the bus, hash-chained and anchored, so a change made behind its back
is named by `govbus audit verify` and raised for the authority; and who received whose data."""

import asyncio
import csv
import io
from datetime import UTC, datetime

import asyncpg
import pytest

from consumers.chain import CHAINED, GENESIS, extend
from consumers.ledger import row_values, run_ledger
from ops.kafka_io import subscribe
from schemas.codec import default_codec
from streams.rules.exchange import reject_record
from tests.helpers import (
    approved_entry,
    consume,
    decoded,
    delivery,
    eventually,
    govbus_on,
    produce,
    resident_id,
    seed_catalog,
)

pytestmark = pytest.mark.integration
CODEC = default_codec()


@pytest.fixture
async def audited(bus, own_db):
    """The ledger sink of this test's deployment, writing to the test's own database."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(bus.settings.bootstrap, own_db, bus.prefix, stop=stop, anchor_every=3600))
    yield own_db
    stop.set()
    await asyncio.wait_for(task, 30)


def feed_delivery(d: dict, subscriber: str, items: dict) -> dict:
    return {"event_id": d["event_id"], "subscriber": subscriber, "publisher": d["publisher"],
            "resource_code": d["resource_code"], "subject_id": d["subject_id"], "system_code": None,
            "items": items, "occurred_at": d["occurred_at"], "delivered_at": datetime.now(UTC),
            "grant_id": f"subscription:{d['resource_code']}:{subscriber}", "purpose": None, "digest": "00" * 32,
            "flags": []}


async def rows_in(dsn: str, table: str, want: int, timeout: float = 30.0) -> int:
    async def check():
        conn = await asyncpg.connect(dsn)
        try:
            n = await conn.fetchval(f"SELECT count(*) FROM {table}")
        finally:
            await conn.close()
        return n if n >= want else None

    n = await eventually(check, timeout=timeout)
    assert n == want, f"{table}: {n} rows, not {want}"
    return n


async def fill(bus, dsn: str, n: int = 5) -> list[dict]:
    """n accepted publications, a feed delivery of each and n rejects, through the real ledger sink."""
    ds = [delivery(items={"姓名": "张三", "年龄": 40, "月救助金额": 650.5}) for _ in range(n)]
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"),
                  [CODEC.encode("govbus.exchange.DataDelivery", d) for d in ds])
    await produce(bus.settings.bootstrap, bus.feed("NJ-MZ"),
                  [CODEC.encode("govbus.exchange.FeedDelivery", feed_delivery(d, "NJ-MZ", {"姓名": "张三"}))
                   for d in ds])
    now = datetime.now(UTC)
    await produce(bus.settings.bootstrap, bus.topic("govbus.rejects"), [CODEC.encode("govbus.ops.Reject", reject_record(
        source_topic="file:r.csv", partition=-1, offset=i, raw=b"\x00bad", code="broken_row", reason="why",
        now=now)) for i in range(n)])
    for table in CHAINED:
        await rows_in(dsn, table, n)
    return ds


async def behind_the_back(dsn: str, sql: str, *args) -> str:
    """A superuser's change with the ledger's triggers out of the way, as an intruder with the keys would."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        return await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.mark.rule("R-39.1")
async def test_the_bus_cannot_change_or_remove_a_ledger_row_and_a_replay_adds_none(bus, audited):
    await fill(bus, audited)
    conn = await asyncpg.connect(audited)
    try:
        for table in CHAINED:
            for sql in (f"UPDATE {table} SET recorded_at = now()", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await conn.execute(sql)
        # state tables the ledger keeps up to date stay as they were
        await conn.execute("UPDATE ledger_quarantine SET replay_error = NULL")
    finally:
        await conn.close()

    # the same records again (a replay after a rebalance): the ledger's idempotent writes add nothing
    again = await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=5)
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), [r.value for r in again])
    await asyncio.sleep(3)
    await rows_in(audited, "ledger_deliveries", 5, timeout=1)

    res = govbus_on(bus, audited, "audit", "verify")
    assert res.returncode == 0, res.stderr
    assert "ledger intact" in res.stdout and "ledger_deliveries 5" in res.stdout


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
async def test_a_changed_byte_in_any_ledger_table_is_named_and_raised_for_the_authority(bus, audited):
    ds = await fill(bus, audited)
    third = ds[2]["event_id"]
    changes = {  # one byte each, in a different kind of column
        "ledger_deliveries": ("subject_id", "overlay(subject_id placing 'X' from 5)", third),
        "ledger_feed_deliveries": ("items", "'{姓名,年龄}'", third),
        "ledger_rejects": ("raw", "'\\x01626164'::bytea", "file:r.csv:-1:2"),
    }
    for table, (column, changed, key) in changes.items():
        where = f"WHERE {CHAINED[table].key[0]} = $1"
        conn = await asyncpg.connect(audited)
        seq, was = await conn.fetchrow(f"SELECT chain_seq, {column} FROM {table} {where}", key)
        await conn.close()
        assert await behind_the_back(audited, f"UPDATE {table} SET {column} = {changed} {where}", key) == "UPDATE 1"

        res = govbus_on(bus, audited, "audit", "verify")
        assert res.returncode == 1
        assert f"suspected tampering: {table} row {seq} ({key}" in res.stderr
        assert "changed after it was written" in res.stderr
        alerts = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=10**6, timeout=3),
                         "govbus.ops.Alert")
        (alert,) = [a for a in alerts if a["alert_id"] == f"suspected_tampering:{table}:{seq}"]
        assert alert["kind"] == "suspected_tampering" and set(alert["rule_ids"]) == {"R-39.1", "R-40.1"}
        assert alert["resource_code"] == table and key in alert["message"]

        # put back as it was: the chain holds again
        await behind_the_back(audited, f"UPDATE {table} SET {column} = $2 {where}", key, was)
        assert govbus_on(bus, audited, "audit", "verify").returncode == 0
    # the ledger recorded the alerts it was told of
    await rows_in(audited, "alerts", 3)


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
async def test_a_table_rewritten_with_its_chain_or_cut_short_is_caught_by_the_anchors(bus, audited):
    await fill(bus, audited)
    res = govbus_on(bus, audited, "audit", "anchor")
    assert res.returncode == 0 and "anchored 3 table(s)" in res.stdout, res.stderr

    table = CHAINED["ledger_deliveries"]
    conn = await asyncpg.connect(audited)
    rows = await conn.fetch("SELECT * FROM ledger_deliveries ORDER BY chain_seq")
    await conn.close()
    # an intruder changes row 2 and computes every hash again: the chain alone holds
    values = [row_values(table, r) for r in rows]
    i = table.columns.index("publisher")
    values[1] = (*values[1][:i], "NJ-YB", *values[1][i + 1:])
    hashes = extend(GENESIS, table.name, 1, values)
    await behind_the_back(audited, "UPDATE ledger_deliveries SET publisher = 'NJ-YB' WHERE chain_seq = 2")
    for seq, h in enumerate(hashes, 1):
        await behind_the_back(audited, "UPDATE ledger_deliveries SET row_hash = $2 WHERE chain_seq = $1", seq, h)

    res = govbus_on(bus, audited, "audit", "verify")
    assert res.returncode == 1
    assert "ledger_deliveries row 5" in res.stderr and "does not match its anchor" in res.stderr

    # rows cut off the end leave an intact but shorter chain: the anchor names the last row it knew
    await behind_the_back(audited, "DELETE FROM ledger_rejects WHERE chain_seq >= 4")
    res = govbus_on(bus, audited, "audit", "verify")
    assert res.returncode == 1 and "ledger_rejects row 5 (no key): is gone" in res.stderr


@pytest.mark.rule("R-8.1")
@pytest.mark.rule("R-48.1")
async def test_who_received_names_exactly_the_departments_that_received_and_what(bus, workers, audited):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    for dept in ("NJ-MZ", "NJ-RS"):
        await subscribe(dept, "GA-RK-001", True)
    workers.start()
    one, other = resident_id("51100219900101123"), resident_id("51100219850505456")
    for subject in (one, other):
        await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                      [CODEC.encode("govbus.exchange.DataDelivery", delivery(subject=subject))], key=subject.encode())
    await rows_in(audited, "ledger_feed_deliveries", 4, timeout=60)

    res = govbus_on(bus, audited, "audit", "who-received", "--subject", one, "--format", "csv")
    assert res.returncode == 0, res.stderr
    got = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sorted(r["subscriber"] for r in got) == ["NJ-MZ", "NJ-RS"]  # and nobody else
    for r in got:
        assert r["subject_id"] == one and r["resource_code"] == "GA-RK-001" and r["publisher"] == "NJ-GA"
        assert r["basis"] == "subscription" and r["grant_id"] == f"subscription:GA-RK-001:{r['subscriber']}"
        assert set(r["items"].split(";")) == {"姓名", "户籍地址"}

    res = govbus_on(bus, audited, "audit", "who-received", "--resource", "GA-RK-001", "--since", "2000-01-01")
    assert res.returncode == 0 and res.stdout.count("\n") == 4 and one in res.stdout and other in res.stdout
    res = govbus_on(bus, audited, "audit", "who-received", "--resource", "GA-RK-001", "--since", "2999-01-01")
    assert res.stdout.strip() == "no deliveries recorded"
    res = govbus_on(bus, audited, "audit", "who-received", "--resource", "GA-RK-01")  # no such resource: not "none"
    assert res.returncode == 2 and "no resource 'GA-RK-01' in the catalog the ledger holds" in res.stderr
    assert "did you mean GA-RK-001" in res.stderr

    res = govbus_on(bus, audited, "audit", "what-received", "NJ-MZ", "--format", "csv")
    got = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sorted(r["subject_id"] for r in got) == sorted([one, other]) and {r["subscriber"] for r in got} == {"NJ-MZ"}
    assert govbus_on(bus, audited, "audit", "what-received", "NJ-GA").stdout.strip() == "no deliveries recorded"
    assert govbus_on(bus, audited, "alerts", "--department", "NJ-RS").stdout.strip() == \
        "no alerts recorded about NJ-RS"
