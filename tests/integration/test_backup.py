"""Backup and restore against the real broker and database: a snapshot while the bus runs, then the database
and every state topic lost, a fresh stack rebuilt from the snapshot, and the bus going on without a gap or a
repeat that a subscriber would see."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumers.anchors import read_anchors
from consumers.audit import verify
from consumers.feed import Feed
from consumers.ledger import run_ledger
from ops.backup import BackupError, backup, read_manifest, restore, state_topics
from ops.bench.pipeline import subjects
from ops.kafka_io import subscribe
from schemas.codec import default_codec
from streams.rules.exchange import reject_record
from tests.conftest import other_database
from tests.helpers import (
    Deadlines,
    approved_entry,
    delivery,
    eventually,
    govbus_on,
    notices,
    produce,
    produce_keyed,
    seed_catalog,
)
from topics.settings import kafka_options

pytestmark = pytest.mark.integration
CODEC = default_codec()
FEEDS = ("NJ-MZ", "NJ-RS")


DEADLINES = 5


def command(action: str, deadline_id: str, **fields) -> bytes:
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "action": action,
           "deadline_id": deadline_id, "case_type": None, "case_id": None, "party": None, "received_on": None,
           "extension_days": None, "approved_by": None, "actor": "test", **fields}
    return CODEC.encode("govbus.deadlines.DeadlineCommand", rec)


class Ledger:
    def __init__(self, bus, dsn: str):
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(run_ledger(bus.settings.bootstrap, dsn, bus.prefix, stop=self.stop_event,
                                                   anchor_every=1))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 30)


async def count(dsn: str, sql: str, *args) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


SUBJECTS = subjects(180)


async def publish(bus, part: int, tag: str) -> set[str]:
    """60 publications keyed by subject (each part its own subjects)."""
    records = [delivery(subject=s, items={"姓名": f"{tag}{i}"})
               for i, s in enumerate(SUBJECTS[60 * part:60 * (part + 1)])]
    await produce_keyed(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                        [(r["subject_id"].encode(), CODEC.encode("govbus.exchange.DataDelivery", r)) for r in records])
    return {r["event_id"] for r in records}


async def recorded(dsn: str, ids: set[str], timeout: float = 120) -> None:
    """Every one of `ids` in the ledger, and its delivery to both feeds."""
    async def done():
        d = await count(dsn, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)", list(ids))
        f = await count(dsn, "SELECT count(*) FROM ledger_feed_deliveries WHERE event_id = ANY($1)", list(ids))
        return d == len(ids) and f == len(FEEDS) * len(ids)

    assert await eventually(done, timeout=timeout, interval=0.5)


async def lose_the_state_topics(bus) -> list[str]:
    topics = state_topics(bus.prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap, **kafka_options())
    await admin.start()
    try:
        await admin.delete_topics(topics)

        async def gone():
            return not set(topics) & set(await admin.list_topics())

        assert await eventually(gone, timeout=60, interval=0.5)
    finally:
        await admin.close()
    return topics


@pytest.mark.rule("R-42.1")
@pytest.mark.rule("R-44.1")
@pytest.mark.rule("R-39.1")
async def test_a_restore_after_losing_the_database_and_the_state_topics_loses_nothing(bus, own_db, workers,
                                                                                       tmp_path):
    s = replace(bus.settings, database_url=own_db)
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    for dept in FEEDS:
        await subscribe(dept, "GA-RK-001", True)
    workers.start()
    ledger = Ledger(bus, own_db)
    clock = ["2026-12-01T10:00:00+08:00"]
    deadlines = Deadlines(bus, clock)
    await deadlines.start()
    # share requests received Tuesday 2026-12-01: reminded on 2026-12-11, breached after 2026-12-15
    await produce(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), [
        command("start", f"share_request:{i}", case_type="share_request", case_id=str(i), party="NJ-GA",
                received_on="2026-12-01") for i in range(DEADLINES)])
    assert len(await notices(bus, "started", DEADLINES)) == DEADLINES
    before = await publish(bus, 0, "before")
    await recorded(own_db, before)

    taken = await backup(s, tmp_path / "snapshot")
    manifest, digest = read_manifest(tmp_path / "snapshot")
    assert digest == taken.manifest_sha256
    # names and identity numbers: for the one who took it only
    taken_files = [tmp_path / "snapshot", *(tmp_path / "snapshot").rglob("*")]
    assert {oct(p.stat().st_mode & 0o777) for p in taken_files} <= {"0o700", "0o600"}
    assert set(manifest["topics"]) == set(state_topics(bus.prefix))
    assert manifest["topics"][bus.topic("govbus.catalog")]["records"] >= 1
    assert manifest["topics"][bus.topic("govbus.subscriptions")]["records"] == len(FEEDS)
    assert set(manifest["groups"]) >= {bus.prefix + "govbus-deliveries", bus.prefix + "govbus-ledger"}
    heads = manifest["database"]["chain_heads"]
    assert heads["ledger_deliveries"][0] == len(before)
    (row,) = [r for r in await asyncpg_fetch(own_db, "SELECT backup_id, manifest_sha256, chain_heads::text AS h"
                                                     " FROM ledger_backups")]
    assert row["backup_id"] == taken.backup_id and row["manifest_sha256"] == digest
    assert json.loads(row["h"]) == heads

    after = await publish(bus, 1, "after")  # accepted after the snapshot: only the log has them then
    await recorded(own_db, after)
    clock[0] = "2026-12-11T00:30:00+08:00"  # reminders sent after the snapshot
    reminded = {n["notice_id"] for n in await notices(bus, "reminder", DEADLINES)}
    assert len(reminded) == DEADLINES
    await deadlines.stop()
    await ledger.stop()  # anchors the heads, the rows of `after` included
    for w in workers:
        w.stop()

    # the disaster: the database and every state topic are gone
    admin = await asyncpg.connect(other_database(own_db, "postgres"))
    await admin.execute(f"DROP DATABASE {urlsplit(own_db).path[1:]} WITH (FORCE)")
    await admin.close()
    lost = await lose_the_state_topics(bus)

    # a damaged backup is refused before anything is touched, naming the file
    dump = tmp_path / "snapshot" / "database.dump"
    good = dump.read_bytes()
    dump.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(BackupError, match="database.dump does not match its checksum"):
        await restore(s, tmp_path / "snapshot")
    dump.write_bytes(good)

    restored = await restore(s, tmp_path / "snapshot")
    assert restored.backup_id == taken.backup_id
    assert set(restored.topics_loaded) == {t for t in lost if manifest["topics"][t]["records"]}
    assert restored.topics_loaded[bus.topic("govbus.subscriptions")] == len(FEEDS)
    assert await count(own_db, "SELECT count(*) FROM ledger_deliveries") == len(before)
    # a second restore never overwrites a ledger that holds rows
    with pytest.raises(BackupError, match="already holds"):
        await restore(s, tmp_path / "snapshot")

    # the bus again: the log since the snapshot is replayed, then new publications flow
    workers.start()
    ledger = Ledger(bus, own_db)
    deadlines = Deadlines(bus, clock)
    await deadlines.start()
    later = await publish(bus, 2, "later")
    everything = before | after | later
    await recorded(own_db, everything, timeout=180)
    assert await count(own_db, "SELECT count(*) FROM ledger_deliveries") == len(everything)
    assert await count(own_db, "SELECT count(*) FROM ledger_feed_deliveries") == len(FEEDS) * len(everything)

    # a subscriber reading its feed from the start sees every delivery once
    seen: list[str] = []

    async def read_all():
        async with Feed("NJ-MZ", group_id="NJ-MZ.after-restore") as feed:
            async for rec in feed:
                seen.append(rec.event_id)
                if set(seen) >= everything:
                    return

    await asyncio.wait_for(read_all(), 120)
    assert len(seen) == len(set(seen)) == len(everything)

    # the deadlines go on from the snapshot: a reminder the snapshot had not seen may go out again, with the
    # same notice id (recognised downstream); none is missed, and the breaches come once each
    clock[0] = "2026-12-16T00:00:01+08:00"
    breaches = await notices(bus, "breach", DEADLINES)
    assert sorted(n["deadline_id"] for n in breaches) == sorted(f"share_request:{i}" for i in range(DEADLINES))
    assert {n["notice_id"] for n in await notices(bus, "reminder", DEADLINES)} == reminded
    await deadlines.stop()

    await ledger.stop()
    anchors, _ = await read_anchors(bus.settings.bootstrap, bus.prefix)
    report = await verify(own_db, anchors)
    assert report.intact, [b.describe() for b in report.breaks]
    assert [r["backup_id"] for r in report.restores] == [taken.backup_id]
    assert report.anchors >= 1  # anchors made since the restore are held
    # the rows the database lost came back in the replay, under the same chain numbers but new hashes;
    # the anchors of that lost history are set aside, not taken for tampering
    assert report.superseded >= 1


async def asyncpg_fetch(dsn: str, sql: str):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


@pytest.mark.rule("R-42.1")
async def test_the_commands_say_what_they_did_and_refuse_in_one_line(bus, own_db, tmp_path):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    took = govbus_on(bus, own_db, "backup", str(tmp_path / "b"))
    assert took.returncode == 0, took.stderr
    assert f"{len(state_topics())} state topics" in took.stdout and "manifest " in took.stdout
    assert (tmp_path / "b" / "manifest.json").exists() and (tmp_path / "b" / "database.dump").stat().st_size > 0
    assert await count(own_db, "SELECT count(*) FROM ledger_backups") == 1

    again = govbus_on(bus, own_db, "backup", str(tmp_path / "b"))
    assert again.returncode == 1 and "already holds a backup" in again.stderr and "Traceback" not in again.stderr

    # the database holds a row now (the backup's own record is not a ledger row; a reject is)
    await produce(bus.settings.bootstrap, bus.topic("govbus.rejects"), [CODEC.encode("govbus.ops.Reject", reject_record(
        source_topic="file:r.csv", partition=-1, offset=0, raw=b"x", code="broken_row", reason="why",
        now=datetime.now(UTC)))])
    ledger = Ledger(bus, own_db)
    assert await eventually(lambda: count(own_db, "SELECT count(*) FROM ledger_rejects"), timeout=30)
    await ledger.stop()
    refused = govbus_on(bus, own_db, "restore", str(tmp_path / "b"))
    assert refused.returncode == 1 and "already holds 1 ledger rows" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    (tmp_path / "b" / "topics" / f"{bus.topic('govbus.catalog')}.jsonl").write_text("changed\n")
    damaged = govbus_on(bus, own_db, "restore", str(tmp_path / "b"))
    assert damaged.returncode == 1 and "does not match its checksum" in damaged.stderr
