"""The `govbus` command as a person runs it."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import approved_entry, consume, decoded, resident_id, seed_catalog
from topics.departments import load
from topics.registry import all_topics

GOVBUS = str(Path(sys.executable).parent / "govbus")


def govbus(*args: str, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([GOVBUS, *args], capture_output=True, input=input, timeout=120,
                          env={**os.environ, **(env or {})})


def test_schemas_list_and_check():
    out = govbus("schemas", "list")
    assert out.returncode == 0
    assert b"govbus.exchange.DataDelivery v1" in out.stdout and b"govbus.exchange.DataDelivery v2" in out.stdout
    check = govbus("schemas", "check")
    assert check.returncode == 0 and b"ok  govbus.exchange.DataDelivery v1 -> v2" in check.stdout


async def test_topics_apply_twice(stack):
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    env = {"GOVBUS_TOPIC_PREFIX": prefix}
    first = govbus("topics", "apply", env=env)
    second = govbus("topics", "apply", env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert f"created   {prefix}govbus.deliveries\n".encode() in first.stdout
    assert b"created" not in second.stdout
    assert f"unchanged {len(all_topics(load()))} topics".encode() in second.stdout
    assert b"replication: factor 1, min.insync.replicas 1 on 1 broker\n" in second.stdout


@pytest.mark.rule("R-17.2")
@pytest.mark.rule("R-11.1")
async def test_publish_reports_published_and_rejected_rows(bus, tmp_path):
    """Rows are judged by the bus's own checks before they are sent: what the worker would refuse is listed to the
    department now (which may not read the rejects topic), not reported as published."""
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    f = tmp_path / "people.csv"
    good = resident_id()
    f.write_text(f"subject_id,姓名\n{good},张三\n{resident_id()},李四,多余\n511002198001011238,王五\n",
                 encoding="utf-8")
    out = govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-001", str(f))
    assert out.returncode == 1, out.stderr  # some rows were not published
    assert b"published 1, rejected 2" in out.stdout
    said = out.stderr.decode()
    assert "line 3 has 3 fields, the header has 2" in said and "line 4: taken as a resident identity number" in said
    rejects = sorted(decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=2)),
                     key=lambda r: r["source_offset"])
    assert [(r["source_offset"], r["code"]) for r in rejects] == [(3, "broken_row"), (4, "invalid_identifier")]
    assert all(r["source_topic"].startswith("file:people.csv#") for r in rejects)
    sent = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.publish.NJ-GA"), count=1, settle=1))
    assert [r["subject_id"] for r in sent] == [good]

    own_header = tmp_path / "export.csv"  # a department's own export, the subject named as the catalog names it
    own_header.write_text(f"公民身份号码,姓名\n{resident_id()},赵六\n", encoding="utf-8")
    out = govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-001", str(own_header))
    assert out.returncode == 0 and b"published 1, rejected 0" in out.stdout, out.stderr

    items = tmp_path / "extra.csv"
    items.write_text(f"subject_id,宗教\n{resident_id()},无\n", encoding="utf-8")
    out = govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-001", str(items))
    assert out.returncode == 1 and b"published 0, rejected 1" in out.stdout
    assert "宗教 are not data items of GA-RK-001 in the catalog" in out.stderr.decode()


@pytest.mark.rule("R-17.1")
@pytest.mark.rule("R-26.1")
async def test_publish_and_subscribe_say_at_once_what_the_catalog_says_against_them(bus, tmp_path):
    await seed_catalog(bus, approved_entry("ga-population.yaml"), approved_entry("wy-subsidy.yaml"))
    f = tmp_path / "people.csv"
    f.write_text(f"subject_id,姓名\n{resident_id()},张三\n", encoding="utf-8")
    said = {
        "a misspelled resource": govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-01", str(f)),
        "another provider's resource": govbus("publish", "--as", "NJ-YB", "--resource", "GA-RK-001", str(f)),
        "a resource shared on conditions": govbus("subscribe", "NJ-YB", "WY-MZ-DB-001"),
    }
    for what, out in said.items():
        assert out.returncode == 1 and len(out.stderr.splitlines()) == 1, (what, out.stderr)
    assert (b"nothing published: GA-RK-01 is not in the approved catalog" in said["a misspelled resource"].stderr
            and b"; did you mean GA-RK-001? (R-10.1)" in said["a misspelled resource"].stderr)
    assert (b"nothing published: NJ-YB is not the source of GA-RK-001: its one registered source is NJ-GA"
            in said["another provider's resource"].stderr)
    conditional = said["a resource shared on conditions"].stderr
    assert (b"not subscribed: WY-MZ-DB-001 is shared on conditions" in conditional
            and b"govbus share request WY-MZ-DB-001 --as NJ-YB --purpose" in conditional)
    cancelled = govbus("subscribe", "NJ-YB", "NOPE-9", "--cancel")
    assert cancelled.returncode == 1 and b"nothing cancelled: NOPE-9 is not in the approved catalog" in \
        cancelled.stderr
    for dept in ("NJ-GA", "NJ-YB"):  # nothing was sent
        assert await consume(bus.settings.bootstrap, bus.topic(f"govbus.publish.{dept}"), count=1, timeout=1) == []
    assert await consume(bus.settings.bootstrap, bus.topic("govbus.subscriptions"), count=1, timeout=1) == []


def test_subscribe_refuses_an_unknown_department():
    out = govbus("subscribe", "XX-NONE", "GA-RK-001")
    assert out.returncode != 0
    assert b"XX-NONE is not a department registered on the bus" in out.stderr and out.returncode == 2


@pytest.mark.rule("R-26.1")
def test_calendar_due_and_is_workday_print_what_an_officer_reads():
    assert govbus("calendar", "due", "2026-09-30", "10").stdout == b"2026-10-20\n"
    assert govbus("calendar", "due", "2026-12-24", "10").stdout == b"2027-01-08 provisional\n"
    assert govbus("calendar", "is-workday", "2026-02-14").stdout == b"workday\n"
    assert govbus("calendar", "is-workday", "2026-10-01").stdout == b"rest day\n"
    assert govbus("calendar", "is-workday", "2027-01-02").stdout == b"rest day provisional\n"
    assert govbus("calendar", "is-workday", "2027-01-01").stdout == b"rest day provisional\n"  # New Year, by law
    assert govbus("calendar", "is-workday", "2027-01-04").stdout == b"workday provisional\n"
    bad = govbus("calendar", "due", "2026-13-01", "10")
    assert bad.returncode == 2 and b"is not a date of the form YYYY-MM-DD" in bad.stderr


def test_catalog_submit_refusal_exits_1_with_the_reason(bus, workers, tmp_path):
    workers.start()
    f = tmp_path / "entry.yaml"
    f.write_text("resource_code: X-1\nname: 测试\nclassified: true\n", encoding="utf-8")
    out = govbus("catalog", "submit", str(f), "--as", "NJ-MZ")
    assert out.returncode == 1
    assert "classified (涉密) resources never enter the exchange" in out.stdout.decode()
    assert "[R-3.1]" in out.stdout.decode()
