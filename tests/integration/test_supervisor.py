"""`govbus run` keeps its processes running: each child killed with SIGKILL is restarted, said so on
the console and counted in the supervisor's metrics, and no publication is lost on the way; a child
that keeps exiting is named as crash-looping with its cause, retried ever more slowly."""

import asyncio
import logging
import os
import re
import signal
import sys

import pytest
from prometheus_client import REGISTRY

from consumers.queries import fetch
from ops.bench.pipeline import subjects
from ops.stack import pid_alive
from ops.supervisor import Backoff, ChildSpec, Supervisor, read_state
from schemas.codec import default_codec
from tests.helpers import (
    Run,
    approved_entry,
    delivery,
    eventually,
    produce_keyed,
    read_to_end,
    records_on,
    seed_catalog,
)

pytestmark = pytest.mark.integration

DELIVERY = "govbus.exchange.DataDelivery"
LEVELS = re.compile(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback")


async def until(check, timeout: float, what: str):
    async def probe():
        return check()

    result = await eventually(probe, timeout=timeout, interval=0.2)
    assert result, f"{what} (after {timeout:.0f}s)"
    return result


def publications(first: int, n: int) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    codec = default_codec()
    """n publications about subjects of their own, the first-th to the (first + n - 1)-th."""
    records = [delivery(subject=s, items={"姓名": f"居民{first + i}"})
               for i, s in enumerate(subjects(first + n)[first:])]
    return [(r["subject_id"].encode(), codec.encode(DELIVERY, r)) for r in records], {r["event_id"] for r in records}


@pytest.mark.rule("R-8.1")
@pytest.mark.timeout(600)
async def test_killed_children_are_restarted_and_nothing_is_lost(bus, tmp_path):
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    run = Run(bus, tmp_path)
    published: set[str] = set()
    try:
        pids = await until(lambda: all(run.running(n) for n in ("worker", "ledger", "deadlines"))
                           and {n: run.running(n) for n in ("worker", "ledger", "deadlines")},
                           120, f"the three children running:\n{run.output()}")
        assert run.restarts() == {"worker": 0, "ledger": 0, "deadlines": 0}
        assert "govbus is running" in run.output()

        source, accepted_topic = bus.topic("govbus.deliveries"), bus.topic("govbus.deliveries.accepted")
        batch, ids = publications(0, 3000)
        await produce_keyed(bus.settings.bootstrap, source, batch)
        published |= ids

        async def under_way():  # the worker is killed in the middle of the first batch
            return await records_on(bus.settings.bootstrap, [accepted_topic]) >= 300

        assert await eventually(under_way, timeout=120), run.output()
        assert not LEVELS.search(run.output()), run.output()  # a healthy run says nothing alarming

        for i, name in enumerate(("worker", "ledger", "deadlines")):
            old = pids[name]
            os.kill(old, signal.SIGKILL)
            new = await until(lambda n=name, o=old: (pid := run.running(n)) and pid != o and pid,
                              60, f"{name} restarted:\n{run.output()}")
            assert not pid_alive(old)
            assert f"{name} (pid {old}) was killed by SIGKILL" in run.output()
            assert f"restarted {name} (pid {new}), restart 1" in run.output()
            assert run.children()[name]["restarts"] == 1
            assert run.children()[name]["last_exit"]["signal"] == "SIGKILL"
            assert run.restarts()[name] == 1
            batch, ids = publications(3000 + 100 * i, 100)
            await produce_keyed(bus.settings.bootstrap, source, batch)
            published |= ids

        batch, ids = publications(3300, 300)
        await produce_keyed(bus.settings.bootstrap, source, batch)
        published |= ids

        async def ledger_has_all():
            (row,) = await fetch(bus.settings.dsn, "SELECT count(*) FROM ledger_deliveries WHERE event_id = ANY($1)",
                                 list(published))
            return row[0] == len(published)

        assert await eventually(ledger_has_all, timeout=180, interval=1.0), run.output()
        codec = default_codec()
        accepted = {codec.decode(v, DELIVERY).record["event_id"]
                    for v in await read_to_end(bus.settings.bootstrap, accepted_topic)}
        assert accepted == published  # every publication accepted once or more, and recorded once
        assert run.restarts() == {"worker": 1, "ledger": 1, "deadlines": 1}

        children = {n: run.running(n) for n in ("worker", "ledger", "deadlines")}
        run.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(run.proc.wait, 60) == 0, run.output()
        assert not [n for n, pid in children.items() if pid_alive(pid)]
        state = read_state(run.state_dir)
        assert state["supervisor"]["state"] == "stopped"
        assert {p["state"] for p in state["processes"]} == {"stopped"}
        out = run.output()
        # stopped in reverse start order
        assert out.index("stopped deadlines") < out.index("stopped ledger") < out.index("stopped worker")
    finally:
        run.stop()


async def test_a_child_that_keeps_exiting_is_named_as_crash_looping_with_its_cause(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="govbus.supervisor")
    crasher = ChildSpec("crasher", [sys.executable, "-c",
                                    "import sys; print('cannot open /srv/govbus/keys: no such file'); sys.exit(3)"])
    sup = Supervisor([crasher], tmp_path, backoff=Backoff(initial=0.05, maximum=0.8, reset_after=30,
                                                          crash_exits=5, crash_window=60))
    child = sup.children[0]
    await sup.start()
    try:
        await until(lambda: child.restarts >= 6 and child.state == "restarting", 60, "six restarts")
    finally:
        await sup.stop()
    restarts = child.restarts
    messages = [r.getMessage() for r in caplog.records if r.name == "govbus.supervisor"]

    delays = [float(m) for m in re.findall(r"restarting it in ([\d.]+)s", "\n".join(messages))]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]  # doubled on each exit
    assert set(delays[4:]) == {0.8}  # crash-looping: retried at the longest delay
    (looping,) = [r for r in caplog.records if "crash-looping:" in r.getMessage()]
    assert looping.levelname == "ERROR"
    text = looping.getMessage()
    assert text.startswith("crasher is crash-looping: 5 exits within 60s, the last one exited with code 3")
    assert "cannot open /srv/govbus/keys: no such file" in text  # its cause, from its log
    assert "retrying every 0.8s" in text

    state = read_state(tmp_path)
    (p,) = state["processes"]
    assert p["crash_looping"] and p["last_exit"]["returncode"] == 3
    assert p["last_exit"]["log_tail"] == ["cannot open /srv/govbus/keys: no such file"]
    assert REGISTRY.get_sample_value("govbus_process_restarts_total", {"process": "crasher"}) == restarts
    assert REGISTRY.get_sample_value("govbus_process_up", {"process": "crasher"}) == 0

    # stopped while waiting for its next start: it is not started again
    await asyncio.sleep(1.5)
    assert child.restarts == restarts and child.state == "stopped" and p["state"] == "stopped"
    assert (tmp_path / "crasher.log").read_text().count("---- govbus run starts crasher") == restarts + 1


async def test_a_child_that_stays_up_starts_its_backoff_over(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="govbus.supervisor")
    flag = tmp_path / "crash-once"
    flag.write_text("")
    # exits quickly while the flag file is there, then stays up
    script = (f"import os, sys, time\nif os.path.exists({str(flag)!r}):\n    sys.exit(1)\ntime.sleep(60)\n")
    sup = Supervisor([ChildSpec("flaky", [sys.executable, "-c", script])], tmp_path,
                     backoff=Backoff(initial=0.05, maximum=5, reset_after=1.0, crash_exits=3, crash_window=60))
    child = sup.children[0]
    await sup.start()
    try:
        await until(lambda: child.crash_looping, 30, "crash-looping after three quick exits")
        assert child.delay == 5
        flag.unlink()
        await until(lambda: child.state == "running" and not child.crash_looping and child.delay == 0, 30,
                    "back to a fresh backoff once up for a second")
        assert any("flaky has stayed up 1s: no longer crash-looping" in r.getMessage() for r in caplog.records)
        pid = child.pid
        os.kill(pid, signal.SIGKILL)
        await until(lambda: child.pid not in (None, pid), 10, "restarted after the first delay again")
        assert child.last_exit["signal"] == "SIGKILL"
        assert re.search(r"flaky \(pid \d+\) was killed by SIGKILL after [\d.]+s up; restarting it in 0.05s",
                         "\n".join(r.getMessage() for r in caplog.records))
    finally:
        await sup.stop()
    assert not pid_alive(child.proc.pid)
