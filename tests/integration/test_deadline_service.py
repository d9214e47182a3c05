"""The durable deadline service against the real broker: time is a file the test writes, the
service a process the test kills with SIGKILL."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from schemas.codec import default_codec
from tests.helpers import as_process, consume, decoded, department, produce, properties_file
from topics.settings import REPO_ROOT

N = 40


def command(action: str, deadline_id: str, **fields) -> bytes:
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "action": action,
           "deadline_id": deadline_id, "case_type": None, "case_id": None, "party": None, "received_on": None,
           "extension_days": None, "approved_by": None, "actor": "test", **fields}
    return default_codec().encode("govbus.deadlines.DeadlineCommand", rec)


class Service:
    """`govbus deadlines run` as its own principal, with the rights the registry gives it and no more."""

    def __init__(self, bus, tmp: Path, config: Path):
        self.bus, self.clock, self.log, self.config = bus, tmp / "clock", tmp / "deadlines.log", config
        self.proc: subprocess.Popen | None = None

    def set_time(self, iso: str) -> None:
        self.clock.write_text(iso)

    def start(self) -> None:
        env = {**os.environ, "GOVBUS_TOPIC_PREFIX": self.bus.prefix, "GOVBUS_CLOCK_FILE": str(self.clock),
               "GOVBUS_TICK_SECONDS": "0.2", "GOVBUS_KAFKA_CONFIG": str(self.config)}
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "govbus"), "deadlines", "run"], env=env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=REPO_ROOT)  # noqa: SIM115

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
async def service(bus, tmp_path):
    own = await as_process(bus.settings, "deadlines")
    s = Service(bus, tmp_path, properties_file(own, tmp_path / "deadlines.conf"))
    yield s
    s.stop()


async def notices(bus, kind: str, want: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = [n for n in decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.notices"),
                                                count=10**6, timeout=1)) if n["kind"] == kind]
        if len(got) >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


@pytest.mark.rule("R-26.1")
async def test_killed_and_restarted_the_service_neither_misses_nor_repeats(bus, service):
    topic = bus.topic("govbus.deadlines.commands")
    # share requests received Tuesday 2026-12-01: due 2026-12-15, reminder on 2026-12-11
    await produce(bus.settings.bootstrap, topic, [
        command("start", f"share_request:{i}", case_type="share_request", case_id=str(i), party="NJ-GA",
                received_on="2026-12-01") for i in range(N)])
    service.set_time("2026-12-01T10:00:00+08:00")
    service.start()
    started = await notices(bus, "started", N)
    assert len(started) == N and {n["due_on"] for n in started} == {"2026-12-15"}

    service.set_time("2026-12-11T00:30:00+08:00")
    first = await notices(bus, "reminder", 1)
    service.kill()  # in the middle of things
    service.start()
    reminders = await notices(bus, "reminder", N)
    await asyncio.sleep(2)
    reminders = await notices(bus, "reminder", N)
    assert first and len(reminders) == N
    assert len({n["notice_id"] for n in reminders}) == N

    # an answer stops the clock for one request
    await produce(bus.settings.bootstrap, topic, [command("answer", "share_request:0")])
    await notices(bus, "closed", 1)
    service.set_time("2026-12-15T23:59:00+08:00")  # the due day itself is no breach
    await asyncio.sleep(2)
    assert await notices(bus, "breach", 0, timeout=0) == []
    service.set_time("2026-12-16T00:00:01+08:00")
    await notices(bus, "breach", 1)
    service.kill()
    service.start()
    breaches = await notices(bus, "breach", N - 1)
    await asyncio.sleep(2)
    breaches = await notices(bus, "breach", N - 1)
    assert sorted(int(n["case_id"]) for n in breaches) == list(range(1, N))
    assert len(await notices(bus, "reminder", N)) == N  # none repeated after the second kill


@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-7.1")
async def test_extension_needs_the_heads_approval_and_bad_commands_are_rejected(bus, service):
    topic = bus.topic("govbus.deadlines.commands")
    service.set_time("2026-12-01T10:00:00+08:00")
    service.start()
    await produce(bus.settings.bootstrap, topic, [
        command("start", "verification:1", case_type="verification", case_id="1", party="NJ-GA",
                received_on="2026-12-01"),
        command("extend", "verification:1", extension_days=5, approved_by="李四", actor="NJ-GA"),  # not its head
        command("extend", "verification:1", extension_days=5, approved_by="王建国", actor="NJ-GA"),
        command("extend", "verification:1", extension_days=5, approved_by="王建国", actor="NJ-GA"),  # only once
        b"not avro at all",
    ])
    (extended,) = await notices(bus, "extended", 1)
    assert extended["due_on"] == "2026-12-22"  # 10 working days, then 5 more
    rejects = sorted(decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=3)),
                     key=lambda r: r["source_offset"])  # the rejects topic has several partitions
    assert [r["code"] for r in rejects] == ["refused", "refused", "bad_magic"]
    assert "王建国" in rejects[0]["reason"] and "R-7.1" in rejects[0]["rule_ids"]
    assert "already extended" in rejects[1]["reason"] and "one extension only" in rejects[1]["reason"]


@pytest.mark.rule("R-7.1")
@pytest.mark.rule("R-19.1")
@pytest.mark.rule("R-39.1")
async def test_a_department_extends_only_its_own_deadline_and_reads_the_answer(bus, service, workers, tmp_path):
    """A department's officer asks with `govbus deadlines extend` and the department's own credentials; the service
    answers on the notices topic, which the department reads: extended, or refused and why (the rejects topic is
    the operators'). Starting and closing a deadline are the bus's own record, never a department's command."""
    from aiokafka import AIOKafkaProducer

    from topics.registry import publish_name
    from topics.settings import kafka_options

    await produce(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), [
        command("start", "verification:7", case_type="verification", case_id="7", party="NJ-GA",
                received_on="2026-12-01")])
    service.set_time("2026-12-01T10:00:00+08:00")
    service.start()
    await notices(bus, "started", 1)
    await workers.started()
    ga, yb = await department(bus, "NJ-GA"), await department(bus, "NJ-YB")

    def govbus(s, *argv: str) -> subprocess.CompletedProcess:
        conf = properties_file(s, tmp_path / f"{s.kafka_security.username}.properties")
        env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_KAFKA_CONFIG": str(conf)}
        return subprocess.run([str(Path(sys.executable).parent / "govbus"), *argv], capture_output=True, text=True,
                              timeout=180, env=env)

    def extend(s, head: str, actor: str, deadline: str = "verification:7") -> subprocess.CompletedProcess:
        return govbus(s, "deadlines", "extend", deadline, "--days", "5", "--approved-by", head, "--as", actor,
                      "--wait", "90")

    listed = govbus(ga, "deadlines", "list", "--party", "NJ-GA")  # its own deadlines, with its own credentials
    assert listed.returncode == 0 and "2026-12-15  NJ-GA" in listed.stdout and "verification:7" in listed.stdout
    other = extend(yb, "王建国", "NJ-YB")  # NJ-GA's head named, by another department
    assert other.returncode == 1, other.stderr
    assert "refused [R-7.1] Refused: NJ-YB's extend of case 7" in other.stdout
    assert "only NJ-GA, with its principal head's approval, may ask to extend it, not NJ-YB" in other.stdout
    wrong = extend(ga, "李四", "NJ-GA")
    assert wrong.returncode == 1 and "'李四' is not the registered head" in wrong.stdout, wrong.stderr
    ok = extend(ga, "王建国", "NJ-GA")
    assert ok.returncode == 0, ok.stderr
    assert "extended [R-19.1] Extended: case 7" in ok.stdout and "by 2026-12-22" in ok.stdout
    unknown = extend(ga, "王建国", "NJ-GA", "verification:99")
    assert unknown.returncode == 1 and "there is no deadline 'verification:99'" in unknown.stderr

    # NJ-GA closing its own deadline without answering the case: refused and raised, the deadline stays open
    p = AIOKafkaProducer(bootstrap_servers=ga.bootstrap, **kafka_options(ga), acks="all")
    await p.start()
    try:
        await p.send_and_wait(publish_name("NJ-GA", bus.prefix), key=b"verification:7",
                              value=command("answer", "verification:7", actor="NJ-GA"))
    finally:
        await p.stop()
    alerts = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=1), "govbus.ops.Alert")
    assert [(a["kind"], a["department"]) for a in alerts] == [("suspected_tampering", "NJ-GA")]
    assert "may only send extend" in alerts[0]["message"]
    await asyncio.sleep(2)
    assert await notices(bus, "closed", 0, timeout=0) == []
    assert [n["kind"] for n in await notices(bus, "refused", 2)] == ["refused", "refused"]


@pytest.mark.rule("R-14.1")
async def test_provisional_deadlines_are_recomputed_when_the_year_is_published(bus, service, tmp_path):
    service.set_time("2026-12-24T10:00:00+08:00")
    service.start()
    await produce(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), [
        command("start", "share_request:ye", case_type="share_request", case_id="ye", party="NJ-MZ",
                received_on="2026-12-24")])
    (started,) = await notices(bus, "started", 1)
    assert (started["due_on"], started["provisional"]) == ("2027-01-08", True)  # New Year's Day off by law

    # the authority starts from the draft of the law's days off, and edits it to the notice: here Monday 4 January
    # off as well
    env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix}
    draft = subprocess.run([str(Path(sys.executable).parent / "govbus"), "calendar", "draft", "2027"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert draft.returncode == 0 and "  - 2027-01-01\n" in draft.stdout and "  - 2027-10-01\n" in draft.stdout
    f = tmp_path / "2027.yaml"
    f.write_text(draft.stdout.replace("  - 2027-01-01\n", "  - 2027-01-01\n  - 2027-01-04\n"), encoding="utf-8")
    out = subprocess.run([str(Path(sys.executable).parent / "govbus"), "calendar", "publish", str(f)],
                         capture_output=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    (rescheduled,) = await notices(bus, "rescheduled", 1)
    assert (rescheduled["due_on"], rescheduled["provisional"]) == ("2027-01-11", False)

    due = subprocess.run([str(Path(sys.executable).parent / "govbus"), "calendar", "due", "2026-12-24", "10"],
                         capture_output=True, env=env, timeout=60)
    assert due.stdout == b"2027-01-11\n"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_service_reports_open_deadlines_notices_flow_and_lag(bus):
    from streams.deadline_service import DeadlineService
    from streams.rules.deadlines import ZONE

    now = [datetime(2026, 12, 1, 10, tzinfo=ZONE)]
    svc = DeadlineService(await as_process(bus.settings, "deadlines"), clock=lambda: now[0], tick_interval=0.2)
    topic = bus.topic("govbus.deadlines.commands")
    lag = {"group": f"{bus.prefix}govbus-deadlines", "topic": "govbus.deadlines.commands", "partition": "0"}
    flow = {"process": "deadlines"}
    before = {
        "in": sample("govbus_records_in_total", **flow, topic="govbus.deadlines.commands"),
        "states": sample("govbus_records_out_total", **flow, topic="govbus.deadlines"),
        "notices": sample("govbus_records_out_total", **flow, topic="govbus.notices"),
        "rejects": sample("govbus_records_out_total", **flow, topic="govbus.rejects"),
        "started": sample("govbus_deadline_notices_total", kind="started", process="share_request"),
        "reminders": sample("govbus_deadline_notices_total", kind="reminder", process="share_request"),
        "closed": sample("govbus_deadline_notices_total", kind="closed", process="verification"),
    }

    def moved(key: str, name: str, **labels) -> float:
        return sample(name, **labels) - before[key]

    async def steps_until(check, timeout: float = 60.0, **kw) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "the service did not get there"
            await svc.step(**kw)

    await produce(bus.settings.bootstrap, topic, [
        *(command("start", f"share_request:m{i}", case_type="share_request", case_id=f"m{i}", party="NJ-GA",
                  received_on="2026-12-01") for i in range(3)),
        command("start", "verification:m", case_type="verification", case_id="m", party="NJ-MZ",
                received_on="2026-12-01"),
        b"not avro at all",
    ])
    await svc.start()
    try:
        # one command a step: the lag is what the broker holds beyond the service's position
        await steps_until(lambda: moved("in", "govbus_records_in_total", **flow, topic="govbus.deadlines.commands"),
                          max_records=1)
        assert sample("govbus_consumer_lag_records", **lag) == 4
        await steps_until(lambda: moved("in", "govbus_records_in_total", **flow,
                                        topic="govbus.deadlines.commands") == 5)
        assert sample("govbus_consumer_lag_records", **lag) == 0
        assert sample("govbus_deadlines_open", process="share_request", party="NJ-GA") == 3
        assert sample("govbus_deadlines_open", process="verification", party="NJ-MZ") == 1
        assert moved("started", "govbus_deadline_notices_total", kind="started", process="share_request") == 3
        assert moved("states", "govbus_records_out_total", **flow, topic="govbus.deadlines") == 4
        assert moved("notices", "govbus_records_out_total", **flow, topic="govbus.notices") == 4
        assert moved("rejects", "govbus_records_out_total", **flow, topic="govbus.rejects") == 1

        await produce(bus.settings.bootstrap, topic, [command("answer", "share_request:m0"),
                                                      command("answer", "verification:m")])
        await steps_until(lambda: moved("closed", "govbus_deadline_notices_total", kind="closed",
                                        process="verification") == 1)
        assert sample("govbus_deadlines_open", process="share_request", party="NJ-GA") == 2
        # nothing open for NJ-MZ any more: its series goes, as it would be absent after a restart
        assert REGISTRY.get_sample_value("govbus_deadlines_open", {"process": "verification", "party": "NJ-MZ"}) is None

        now[0] = datetime(2026, 12, 11, 0, 30, tzinfo=ZONE)  # the reminders fall due; still open
        await steps_until(lambda: moved("reminders", "govbus_deadline_notices_total", kind="reminder",
                                        process="share_request") == 2)
        assert sample("govbus_deadlines_open", process="share_request", party="NJ-GA") == 2
        assert moved("notices", "govbus_records_out_total", **flow, topic="govbus.notices") == 4 + 2 + 2
    finally:
        await svc.stop()


async def test_a_step_that_fails_is_counted_its_waiting_commands_shown_and_done_again(bus, caplog):
    """A step that fails (here: its transaction refused) is done again from the last commit; each
    failure counts in govbus_step_failures_total, which GovbusStepsFailing watches, and the commands left waiting
    show as the service's lag."""
    from streams.deadline_service import DeadlineService
    from streams.rules.deadlines import ZONE

    svc = DeadlineService(await as_process(bus.settings, "deadlines"),
                          clock=lambda: datetime(2026, 12, 1, 10, tzinfo=ZONE), tick_interval=0.2)
    lag = {"group": f"{bus.prefix}govbus-deadlines", "topic": "govbus.deadlines.commands", "partition": "0"}
    failures = sample("govbus_step_failures_total", process="deadlines")
    await produce(bus.settings.bootstrap, bus.topic("govbus.deadlines.commands"), [
        command("start", f"share_request:f{i}", case_type="share_request", case_id=f"f{i}", party="NJ-GA",
                received_on="2026-12-01") for i in range(2)])
    await svc.start()
    step, stop, calls, failing = svc.step, asyncio.Event(), [], []

    async def fails_twice(**kw):
        calls.append(sample("govbus_consumer_lag_records", **lag))
        failing.append(sample("govbus_step_failing", process="deadlines"))
        if len(calls) <= 2:
            raise RuntimeError("the broker refused the step's transaction")
        await step(**kw)
        if sample("govbus_consumer_lag_records", **lag) == 0:
            stop.set()

    svc.step = fails_twice
    try:
        await asyncio.wait_for(svc.run(stop), 60)
    finally:
        await svc.stop()
    assert sample("govbus_step_failures_total", process="deadlines") - failures == 2
    assert len([r for r in caplog.records if "deadline step failed" in r.getMessage()]) == 2
    assert calls[1:3] == [2, 2]  # after each failure, the two commands waiting
    assert failing[1:3] == [1, 1] and sample("govbus_step_failing", process="deadlines") == 0  # for govbus status
    started = [n for n in decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.notices"), count=10**6,
                                                timeout=2)) if n["kind"] == "started"]
    assert sorted(n["case_id"] for n in started) == ["f0", "f1"]
