"""`govbus status` against the suite's broker and database: what is reachable, the lag of every
consumer group of the deployment per partition, and a non-zero exit when a supervised process is down."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.feed import Feed
from ops.supervisor import Backoff, ChildSpec, Supervisor
from schemas.codec import default_codec
from tests.helpers import eventually, feed_records, ledger_rows, produce_keyed
from topics.settings import REPO_ROOT

pytestmark = pytest.mark.integration

GOVBUS = str(Path(sys.executable).parent / "govbus")


async def status(state_dir: Path, *args: str) -> tuple[int, str]:
    """`govbus status ARGS` on this test's deployment (its prefix is in the environment)."""
    env = {**os.environ, "GOVBUS_STATE_DIR": str(state_dir)}
    res = await asyncio.to_thread(subprocess.run, [GOVBUS, "status", *args], capture_output=True, text=True,
                                  env=env, cwd=REPO_ROOT, timeout=120)
    assert not res.stderr, res.stderr
    return res.returncode, res.stdout


async def status_json(state_dir: Path) -> tuple[int, dict]:
    code, out = await status(state_dir, "--json")
    return code, json.loads(out)


async def test_status_shows_the_stores_and_the_lag_of_every_group_per_partition(bus, ledger, tmp_path):
    feed = bus.feed("NJ-MZ")
    first, later = feed_records(12), feed_records(5)
    await produce_keyed(bus.settings.bootstrap, feed, first)
    group = f"mz-case-system-{uuid.uuid4().hex[:6]}"  # a subscriber's own group, named as it likes
    read = 0
    async with Feed("NJ-MZ", group_id=group) as f:
        async for _ in f:
            read += 1
            if read == len(first):
                break
    await produce_keyed(bus.settings.bootstrap, feed, later)  # on the feed, not yet read by the subscriber
    ids = [default_codec().decode(v).record["event_id"] for _, v in first + later]
    await ledger_rows("SELECT event_id FROM ledger_feed_deliveries WHERE event_id = ANY($1)", ids, want=len(ids))

    def groups_of(report: dict) -> dict[str, dict]:
        return {g["group"]: g for g in report["consumer_groups"]}

    async def ledger_caught_up():
        code, report = await status_json(tmp_path)
        g = groups_of(report).get(bus.prefix + "govbus-ledger")
        on_feed = [p for p in (g or {}).get("partitions", []) if p["topic"] == feed]
        return report if on_feed and sum(p["end"] for p in on_feed) == 17 and g["lag"] == 0 else None

    report = await eventually(ledger_caught_up, timeout=60, interval=1.0)
    assert report, "the ledger's group has committed the feed to its end"
    assert report["broker"]["reachable"] and report["broker"]["brokers"] == 1
    assert report["database"]["reachable"]
    assert report["prefix"] == bus.prefix
    assert report["supervisor"] is None and report["processes"] == []  # no `govbus run` in this state dir

    groups = groups_of(report)
    own = {bus.prefix + g for g in ("govbus-deliveries", "govbus-ledger", "govbus-deadlines", "govbus")}
    assert own <= set(groups)
    ledger_group = groups[bus.prefix + "govbus-ledger"]
    assert ledger_group["kind"] == "bus" and ledger_group["role"] == "ledger sink"
    assert ledger_group["state"] == "Stable" and ledger_group["members"] == 1

    sub = groups[group]
    assert sub["kind"] == "feed" and sub["state"] == "Empty" and sub["members"] == 0
    assert {p["topic"] for p in sub["partitions"]} == {feed}
    # the last record read counts as processed only once the loop asks for the next one: not committed
    processed = len(first) - 1
    assert sum(p["committed"] for p in sub["partitions"]) == processed
    assert sum(p["end"] for p in sub["partitions"]) == len(first) + len(later)
    assert sub["lag"] == len(first) + len(later) - processed
    for p in sub["partitions"]:
        assert p["lag"] == p["end"] - p["committed"] >= 0
    # other deployments' groups on the same broker are not shown
    assert all(name in own or all(p["topic"].startswith(bus.prefix) for p in g["partitions"])
               for name, g in groups.items())

    assert report["ledger"]["last_write"] is not None and report["ledger"]["age_seconds"] < 300
    assert report["deadlines"] == {"open": 0, "breached": 0, "provisional": 0, "next_due": None}
    assert isinstance(report["rejects_last_hour"]["by_code"], dict)
    # None while the table is not there (unknown, not a failure); a count once it is
    assert set(report["quarantine"]) >= {"unresolved"}
    assert report["quarantine"]["unresolved"] is None or report["quarantine"]["unresolved"] >= 0

    # the same on a terminal: every line fits 80 columns, names without the deployment prefix
    code, text = await status(tmp_path)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "broker     ok" in text and "database   ok" in text
    assert f"{group} (feed)" in text and "govbus-ledger " in text
    assert "behind: govbus.feed.NJ-MZ[" in text
    assert code == (0 if report["ok"] else 1)


async def test_the_ledger_is_not_shown_behind_on_what_an_aborted_transaction_left(bus, ledger, tmp_path):
    """A transaction aborted on a topic the ledger records (a failed step of the deadline service) leaves records a
    read_committed reader skips: the ledger commits past them although it has nothing to write."""
    from aiokafka import AIOKafkaProducer

    from ops.status import SMALL_GAP
    from topics.settings import kafka_options

    topic = bus.topic("govbus.notices")
    notice = {"notice_id": f"t:{uuid.uuid4().hex}", "occurred_at": datetime.now(UTC), "kind": "started",
              "deadline_id": "t", "case_type": "share_request", "case_id": "t", "party": "NJ-GA",
              "due_on": "2026-12-15", "provisional": False, "rule_id": "R-26.1", "message": "started"}
    p = AIOKafkaProducer(bootstrap_servers=bus.settings.bootstrap, **kafka_options(bus.settings), acks="all",
                         enable_idempotence=True, transactional_id=f"{bus.prefix}test-{uuid.uuid4().hex[:8]}")
    await p.start()
    try:
        async with p.transaction():
            await p.send(topic, key=b"t", value=default_codec().encode("govbus.deadlines.Notice", notice))
        await ledger_rows("SELECT 1 FROM deadline_notices WHERE notice_id = $1", notice["notice_id"])
        await p.begin_transaction()
        for _ in range(3 * SMALL_GAP):
            await p.send(topic, key=b"t", value=b"a step that failed")
        await p.abort_transaction()
    finally:
        await p.stop()

    async def caught_up():
        _, report = await status_json(tmp_path)
        g = {g["group"]: g for g in report["consumer_groups"]}.get(bus.prefix + "govbus-ledger") or {}
        on = [q for q in g.get("partitions", []) if q["topic"] == topic]
        return on if on and on[0]["committed"] == on[0]["end"] else None

    on = await eventually(caught_up, timeout=30, interval=1.0)
    assert on and on[0]["end"] == 1 + 1 + 3 * SMALL_GAP + 1 and on[0]["lag"] == 0, on  # two markers


async def test_status_fails_while_a_supervised_process_is_not_running(bus, tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    # after its first exit it stays down long enough to be seen down
    sup = Supervisor([ChildSpec("worker", sleeper, metrics_port=0), ChildSpec("ledger", sleeper)], tmp_path,
                     backoff=Backoff(initial=120, maximum=120), metrics_address=None)
    await sup.start()
    try:
        code, report = await status_json(tmp_path)
        procs = {p["name"]: p for p in report["processes"]}
        assert report["supervisor"]["running"] and report["supervisor"]["pid"] == os.getpid()
        assert procs["worker"]["running"] and procs["ledger"]["running"]
        assert procs["worker"]["pid"] == sup.children[0].pid and procs["worker"]["uptime_seconds"] >= 0
        assert not [p for p in report["problems"] if "worker" in p or "ledger" in p or "govbus run" in p]

        os.kill(sup.children[0].pid, signal.SIGKILL)

        async def seen_down():
            return sup.children[0].state == "restarting"

        assert await eventually(seen_down, timeout=10)
        code, report = await status_json(tmp_path)
        procs = {p["name"]: p for p in report["processes"]}
        assert code == 1 and not report["ok"]
        assert not procs["worker"]["running"] and procs["ledger"]["running"]
        assert procs["worker"]["last_exit"]["signal"] == "SIGKILL"
        assert "worker is not running (restarting, last it was killed by SIGKILL)" in report["problems"]

        code, text = await status(tmp_path)
        assert code == 1
        assert "DOWN (restarting)" in text and "was killed by SIGKILL" in text
    finally:
        await sup.stop()

    code, report = await status_json(tmp_path)
    assert code == 1
    assert report["problems"][0].startswith("govbus run was stopped at ")
