"""`govbus evaluate` on a known year: the records the bus writes, put on the recorded topics with their own times,
written by the real ledger into PostgreSQL, then evaluated through the CLI; the CSV read back and the HTML report
drawn by headless Chromium."""

import asyncio
import csv
import json
import re
import shutil
import subprocess
import uuid
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from consumers.ledger import run_ledger
from schemas.codec import default_codec
from schemas.provenance import provenance_digest
from streams.rules.exchange import reject_record
from tests.helpers import approved_entry, eventually, govbus_on, resident_id
from topics.settings import kafka_options

pytestmark = pytest.mark.integration
BJ = ZoneInfo("Asia/Shanghai")
CODEC = default_codec()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
YEAR = 2025


def bj(month: int, day: int, hour: int = 10, year: int = YEAR) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BJ)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


# ---------------------------------------------------------------- the year 2025, as the bus would have written it

def entry(code: str, provider: str, cycle: str, share: str, approved: datetime, version: int = 1, **more) -> dict:
    e = approved_entry("wy-subsidy.yaml" if provider == "WY-MZ" else "ga-population.yaml", resource_code=code,
                       provider=provider, update_cycle=cycle, share_attribute=share, share_basis="《办法》第五十九条",
                       share_conditions="仅限履职", base_database=None, **more)
    e.update(version=version, approved_at=approved)
    return e


def catalog_decision(event_id: str, kind: str, subject: str, dept: str, status: str, at: datetime, *,
                     resource: str | None = None, due: str | None = None, late: bool = False) -> dict:
    return {"event_id": event_id, "occurred_at": at, "subject_kind": kind, "subject_id": subject,
            "resource_code": resource, "department": dept, "status": status, "reasons": [status],
            "rule_ids": ["R-14.1"], "late": late, "due_on": due, "decided_by": None}


def share_decision(request: str, dept: str, status: str, at: datetime, due: str | None = None) -> dict:
    return {"event_id": f"{request}:{status}", "occurred_at": at, "request_id": request, "department": dept,
            "resource_code": "WY-MZ-DB-001", "status": status, "reasons": [status], "rule_ids": ["R-26.1"],
            "grant_id": None, "due_on": due}


def publication(publisher: str, resource: str, at: datetime, system: str | None = None) -> dict:
    return {"event_id": uuid.uuid4().hex, "occurred_at": at, "publisher": publisher, "resource_code": resource,
            "subject_id": resident_id(f"5110021980{uuid.uuid4().int % 10**7:07d}"), "items": {"姓名": "张三"},
            "system_code": system}


def feed(pub: dict, subscriber: str, at: datetime, grant: str) -> dict:
    return {**pub, "subscriber": subscriber, "delivered_at": at, "grant_id": grant, "purpose": None, "flags": [],
            "digest": provenance_digest(pub["publisher"], pub["resource_code"], pub["event_id"], pub["subject_id"],
                                        pub["items"])}


def reject(pub: dict, code: str, at: datetime, n: int, publisher: str | None = None) -> dict:
    return reject_record(source_topic="govbus.publish.X", partition=0, offset=n, code=code, reason=code, now=at,
                         raw=CODEC.encode("govbus.exchange.DataDelivery", pub), event_id=pub["event_id"],
                         publisher=publisher or pub["publisher"])


def alert(kind: str, dept: str, system: str | None, resource: str, subject: str, at: datetime) -> dict:
    return {"event_id": f"{kind}:{dept}:{subject}", "alert_id": f"{kind}:{dept}:{resource}", "occurred_at": at,
            "kind": kind, "rule_ids": ["R-45.1"], "department": dept, "source_department": "NJ-GA",
            "system_code": system, "resource_code": resource, "items": ["姓名"], "subject_id": subject,
            "message": kind}


def the_year() -> dict[str, list[tuple[str, dict, int | None]]]:
    """topic -> [(record type, record, Kafka timestamp)]: the year whose evaluation is worked out in the test."""
    entries = [
        entry("GA-RK-001", "NJ-GA", "monthly", "unconditional", bj(1, 10)),
        entry("GA-HJ-002", "NJ-GA", "yearly", "none", bj(3, 3)),
        entry("MZ-DB-001", "NJ-MZ", "quarterly", "conditional", bj(2, 5)),
        entry("MZ-DB-001", "NJ-MZ", "quarterly", "conditional", bj(6, 10), version=2),
        entry("WY-MZ-DB-001", "WY-MZ", "monthly", "conditional", bj(6, 2)),
        entry("GA-JZ-003", "NJ-GA", "monthly", "unconditional", bj(2, 1, year=YEAR + 1)),  # after the year
    ]
    d = catalog_decision
    decisions = [
        # reviews owed by NJ-SJJ: on time, on time (on the day), on time, late, never made
        d("s1:p", "entry", "s1", "NJ-GA", "pending_review", bj(1, 2), resource="GA-RK-001", due="2025-01-16"),
        d("s1:a", "entry", "s1", "NJ-GA", "approved", bj(1, 10), resource="GA-RK-001"),
        d("s2:p", "entry", "s2", "NJ-GA", "pending_review", bj(2, 17), resource="GA-HJ-002", due="2025-03-03"),
        d("s2:a", "entry", "s2", "NJ-GA", "approved", bj(3, 3, 17), resource="GA-HJ-002"),
        d("s3:p", "entry", "s3", "NJ-MZ", "pending_review", bj(1, 20), resource="MZ-DB-001", due="2025-02-13"),
        d("s3:a", "entry", "s3", "NJ-MZ", "approved", bj(2, 5), resource="MZ-DB-001"),
        # NJ-MZ's updates after two changes of law: the first in time, the second late
        d("c1", "change", "c1", "NJ-MZ", "accepted", bj(4, 28), due="2025-05-20"),
        d("s4:p", "entry", "s4", "NJ-MZ", "pending_review", bj(5, 15), resource="MZ-DB-001", due="2025-05-29"),
        d("s4:a", "entry", "s4", "NJ-MZ", "approved", bj(6, 10), resource="MZ-DB-001"),
        d("c2", "change", "c2", "NJ-MZ", "accepted", bj(8, 20), due="2025-09-10"),
        d("s5:p", "entry", "s5", "NJ-MZ", "pending_review", bj(9, 20), resource="MZ-DB-001", due="2025-10-13",
          late=True),
        # the county's authority reviews the county's entry in time
        d("s6:p", "entry", "s6", "WY-MZ", "pending_review", bj(5, 20), resource="WY-MZ-DB-001", due="2025-06-04"),
        d("s6:a", "entry", "s6", "WY-MZ", "approved", bj(6, 2), resource="WY-MZ-DB-001"),
    ]
    s = share_decision
    shares = [  # requests to WY-MZ: answered in time, answered late, never answered, due only next year
        s("r1", "NJ-YB", "pending", bj(7, 1), "2025-07-15"), s("r1", "NJ-YB", "approved", bj(7, 8)),
        s("r2", "NJ-RS", "pending", bj(10, 9), "2025-10-23"), s("r2", "NJ-RS", "refused", bj(10, 30)),
        s("r3", "NJ-WJ", "pending", bj(12, 1), "2025-12-15"),
        s("r4", "NJ-JY", "pending", bj(12, 26), "2026-01-12"),
    ]
    pubs = [publication("NJ-GA", "GA-RK-001", bj(m, 15)) for m in range(1, 10)]
    pubs += [publication("NJ-GA", "GA-RK-001", bj(3, 20)), publication("NJ-GA", "GA-HJ-002", bj(6, 16))]
    pubs += [publication("NJ-MZ", "MZ-DB-001", bj(m, day)) for m, day in ((2, 20), (5, 12), (11, 3))]
    pubs += [publication("WY-MZ", "WY-MZ-DB-001", bj(m, 10), "WY-MZ-JZ") for m in range(6, 13)]
    # half an hour into 2026 in Beijing, still 2025 in UTC: not December's publication
    late_pub = publication("NJ-GA", "GA-RK-001", bj(1, 1, 0, year=YEAR + 1).replace(minute=30))
    early_pub = publication("NJ-GA", "GA-RK-001", bj(12, 31, 20, year=YEAR - 1))
    feeds = [("NJ-MZ", feed(pubs[2], "NJ-MZ", bj(3, 15, 11), "subscription:GA-RK-001:NJ-MZ")),
             ("NJ-YB", feed(pubs[-3], "NJ-YB", bj(10, 10, 11), "grant:r1"))]
    rejects = [
        reject(publication("NJ-GA", "GA-XX-009", bj(4, 1)), "unknown_resource", bj(4, 1), 1),
        reject(publication("NJ-GA", "GA-RK-001", bj(4, 2)), "invalid_identifier", bj(4, 2), 2),
        reject(publication("NJ-GA", "GA-RK-001", bj(4, 3)), "internal_error", bj(4, 3), 3),  # the bus's fault
        reject(publication("NJ-GA", "GA-RK-001", bj(4, 4)), "suspected_tampering", bj(4, 4), 4),  # NJ-MZ's doing
        reject(publication("WY-MZ", "WY-MZ-DB-001", bj(7, 1)), "invalid_identifier", bj(7, 1), 5),
        reject(publication("WY-MZ", "WY-MZ-DB-001", bj(7, 2)), "invalid_identifier", bj(7, 2), 6),
        reject(publication("SZ-MZ", "GA-RK-001", bj(8, 1), "SZ-MZ-YW"), "one_source_violation", bj(8, 1), 7),
        reject(publication("SZ-MZ", "GA-RK-001", bj(8, 2), "SZ-MZ-YW"), "one_source_violation", bj(8, 2), 8),
    ]
    alerts = [alert("duplicate_collection", "WY-MZ", "WY-MZ-JZ", "WY-MZ-DB-001", resident_id(f"51100219700101{i}00"),
                    bj(8, 5 + i)) for i in range(3)]
    alerts += [alert("one_source_violation", "SZ-MZ", "SZ-MZ-YW", "GA-RK-001", resident_id(), bj(8, 1)),
               alert("suspected_tampering", "NJ-MZ", None, "GA-RK-001", resident_id("51100219900101123"), bj(4, 4))]
    return {
        "govbus.catalog": [("govbus.catalog.CatalogEntry", e, None) for e in entries],
        "govbus.catalog.decisions": [("govbus.catalog.CatalogDecision", x, None) for x in decisions],
        "govbus.sharing.decisions": [("govbus.sharing.ShareDecision", x, None) for x in shares],
        "govbus.deliveries.accepted": [("govbus.exchange.DataDelivery", p, ms(p["occurred_at"]) + 500)
                                       for p in [*pubs, late_pub, early_pub]],
        "govbus.rejects": [("govbus.ops.Reject", r, None) for r in rejects],
        "govbus.alerts": [("govbus.ops.Alert", a, None) for a in alerts],
        **{f"govbus.feed.{dept}": [("govbus.exchange.FeedDelivery", f, None)] for dept, f in feeds},
    }


async def put_on_the_bus(bus, year: dict) -> int:
    p = AIOKafkaProducer(bootstrap_servers=bus.settings.bootstrap, **kafka_options(), acks="all")
    await p.start()
    n = 0
    try:
        for topic, records in year.items():
            for name, rec, ts in records:
                await p.send(bus.topic(topic), key=str(n).encode(), value=CODEC.encode(name, rec), timestamp_ms=ts)
                n += 1
        await p.flush()
    finally:
        await p.stop()
    return n


async def recorded(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT (SELECT count(*) FROM catalog_entries) + (SELECT count(*) FROM catalog_decisions)"
            " + (SELECT count(*) FROM share_decisions) + (SELECT count(*) FROM ledger_deliveries)"
            " + (SELECT count(*) FROM ledger_rejects) + (SELECT count(*) FROM alert_subjects)"
            " + (SELECT count(*) FROM ledger_feed_deliveries)")
    finally:
        await conn.close()


# ---------------------------------------------------------------- headless Chromium


def chromium(html: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium on the file with no network at all: every host name fails to resolve."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", *args, html.as_uri()],
        capture_output=True, text=True, timeout=120)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:8], "big")
    assert head[8] == 8 and head[12] == 0 and head[9] in (2, 6)
    bpp = 3 if head[9] == 2 else 4
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w * bpp)
    stride = w * bpp + 1
    for y in range(h):
        f, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([bytes(line[j:j + 3]) for j in range(0, len(line), bpp)])
        prev = line
    return w, h, rows


# ---------------------------------------------------------------- the test


@pytest.mark.rule("R-46.1")
@pytest.mark.rule("R-13.1")
@pytest.mark.rule("R-14.1")
@pytest.mark.rule("R-20.1")
@pytest.mark.rule("R-26.1")
@pytest.mark.rule("R-45.1")
async def test_a_known_year_is_evaluated_ranked_rolled_up_and_drawn(bus, own_db, tmp_path):
    stop = asyncio.Event()
    ledger = asyncio.create_task(run_ledger(bus.settings.bootstrap, own_db, bus.prefix, stop=stop))
    try:
        sent = await put_on_the_bus(bus, the_year())
        # the newer version of MZ-DB-001 replaces the older one; every other record is one row
        assert await eventually(lambda: _at_least(own_db, sent - 1), timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(ledger, 30)

    out_csv, out_html = tmp_path / "eval.csv", tmp_path / "eval.html"
    res = govbus_on(bus, own_db, "evaluate", "--year", str(YEAR), "--json", "--csv", str(out_csv),
                 "--html", str(out_html))
    assert res.returncode == 0 and not res.stderr, res.stderr
    ev = json.loads(res.stdout)
    rows = {r["code"]: r for r in ev["departments"]}
    ga, mz, wy, sz = rows["NJ-GA"], rows["NJ-MZ"], rows["WY-MZ"], rows["SZ-MZ"]
    sjj, wysjj = rows["NJ-SJJ"], rows["WY-SJJ"]

    # catalog completeness: GA-XX-009 was published but never catalogued; GA-JZ-003 came only in 2026
    assert (ga["counts"]["catalogued"], ga["counts"]["uncatalogued"]) == (2, 1)
    assert ga["measures"]["completeness"] == pytest.approx(2 / 3)
    assert (mz["counts"]["catalogued"], wy["counts"]["catalogued"]) == (1, 1)
    # catalog timeliness: NJ-MZ's update after the first change in time, after the second late; NJ-SJJ's reviews
    # 3 of 5 in time (one late, one never made); WY-SJJ's one in time
    c = mz["counts"]
    assert (c["updates_due"], c["updates_on_time"], c["updates_late"], c["updates_overdue"]) == (2, 1, 1, 0)
    c = sjj["counts"]
    assert (c["reviews_due"], c["reviews_on_time"], c["reviews_late"], c["reviews_overdue"]) == (5, 3, 1, 1)
    assert sjj["measures"]["timeliness"] == pytest.approx(0.6)
    assert wysjj["measures"]["timeliness"] == 1.0
    # the responsibility lists fulfilled on the update cycle: GA-RK-001 monthly in 9 of 12 months (not December:
    # the half-hour into 2026 in Beijing does not count), GA-HJ-002 once a year; MZ-DB-001 in 3 of 4 quarters;
    # WY-MZ-DB-001 monthly in each of its 7 months
    assert (ga["counts"]["periods_met"], ga["counts"]["periods_expected"]) == (10, 13)
    assert (mz["counts"]["periods_met"], mz["counts"]["periods_expected"]) == (3, 4)
    assert (wy["counts"]["periods_met"], wy["counts"]["periods_expected"]) == (7, 7)
    # share requests to WY-MZ: one in time, one late, one unanswered; the one due in 2026 is not this year's
    c = wy["counts"]
    assert (c["requests_due"], c["requests_on_time"], c["requests_late"], c["requests_overdue"]) == (3, 1, 1, 1)
    # data quality: the bus's own fault and the record published in NJ-GA's name by another are not NJ-GA's
    assert (ga["counts"]["accepted"], ga["counts"]["rejected"]) == (11, 2)
    assert (wy["counts"]["accepted"], wy["counts"]["rejected"]) == (7, 2)
    assert (sz["counts"]["accepted"], sz["counts"]["rejected"], sz["counts"]["one_source_violations"]) == (0, 2, 2)
    assert mz["counts"]["security_incidents"] == 1 and ga["counts"]["security_incidents"] == 0
    # share degree: resources delivered to another department of those catalogued
    assert (ga["counts"]["shared"], mz["counts"]["shared"], wy["counts"]["shared"]) == (1, 0, 1)
    # the systems listed
    listed = {(x["department"], x["system_code"]): x for x in ev["listed"]}
    assert set(listed) == {("SZ-MZ", "SZ-MZ-YW"), ("WY-MZ", "WY-MZ-JZ")}
    assert listed[("SZ-MZ", "SZ-MZ-YW")]["one_source_violations"] == 2
    assert listed[("WY-MZ", "WY-MZ-JZ")]["duplicate_subjects"] == 3
    assert listed[("WY-MZ", "WY-MZ-JZ")]["requests_not_answered_in_time"] == 2
    # scores and the ranking; departments with nothing to evaluate are not ranked
    scores = {code: r["score"] for code, r in rows.items() if r["score"] is not None}
    assert scores == {"WY-SJJ": 100.0, "WY-MZ": 82.2, "NJ-GA": 69.6, "NJ-MZ": 65.0, "NJ-SJJ": 60.0, "SZ-MZ": 0.0}
    assert [r["code"] for r in ev["departments"] if r["rank"]] == ["WY-SJJ", "WY-MZ", "NJ-GA", "NJ-MZ", "NJ-SJJ",
                                                                    "SZ-MZ"]
    assert [r["rank"] for r in ev["departments"] if r["rank"]] == [1, 2, 3, 4, 5, 6]
    assert rows["NJ-JT"]["rank"] is None and rows["NJ-JT"]["score"] is None
    # the counties roll up from their departments' counts, the city from all
    counties = {r["code"]: r for r in ev["counties"]}
    assert counties["WY"]["score"] == 85.2 and counties["WY"]["rank"] == 1
    assert counties["SZ"]["score"] == 0.0 and counties["SZ"]["rank"] == 2
    assert counties["DX"]["score"] is None and counties["DX"]["rank"] is None
    assert counties["WY"]["counts"]["reviews_on_time"] == 1 and counties["WY"]["counts"]["requests_due"] == 3
    assert ev["total"]["code"] == "CITY" and ev["total"]["score"] == 64.5
    assert ev["total"]["measures"]["fulfilment"] == pytest.approx(20 / 24)
    assert any("verification" in n for n in ev["notes"]) and any("objection" in n for n in ev["notes"])

    # the CSV: one row per department, county and the city, Chinese names as UTF-8 with a byte-order mark
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    by_code = {r["code"]: r for r in table}
    assert len([r for r in table if r["kind"] == "department"]) == len(rows)
    assert by_code["WY-MZ"]["name"] == "威远县民政局" and by_code["WY-MZ"]["rank"] == "2"
    assert by_code["WY-MZ"]["score"] == "82.2" and by_code["WY-MZ"]["answers"] == "33.3"
    assert by_code["NJ-GA"]["completeness"] == "66.7" and by_code["NJ-GA"]["periods_expected"] == "13"
    assert by_code["NJ-JT"]["score"] == "" and by_code["NJ-JT"]["completeness"] == ""
    assert by_code["WY"]["kind"] == "county" and by_code["WY"]["score"] == "85.2"
    assert by_code["CITY"]["score"] == "64.5" and by_code["CITY"]["year"] == str(YEAR)

    # the terminal table: fits 100 columns, the ranking in order
    res = govbus_on(bus, own_db, "evaluate", "--year", str(YEAR))
    assert res.returncode == 0 and not res.stderr, res.stderr
    lines = res.stdout.splitlines()
    from ops.report import width
    assert max(width(line) for line in lines) <= 100, res.stdout
    ranked = [line.split()[1] for line in lines if re.match(r"^\s+\d+ [A-Z]+-", line)]
    assert ranked == ["WY-SJJ", "WY-MZ", "NJ-GA", "NJ-MZ", "NJ-SJJ", "SZ-MZ"]
    assert any(line.split()[:2] == ["1", "WY"] and "85.2" in line for line in lines)
    assert any("WY-MZ-JZ" in line and "3 subjects collected again" in line for line in lines)

    # one county: its departments, ranked among themselves, and its roll-up
    res = govbus_on(bus, own_db, "evaluate", "--year", str(YEAR), "--county", "WY", "--json")
    assert res.returncode == 0 and not res.stderr, res.stderr
    wy_ev = json.loads(res.stdout)
    assert [(r["code"], r["rank"]) for r in wy_ev["departments"]] == [("WY-SJJ", 1), ("WY-MZ", 2)]
    assert wy_ev["total"]["code"] == "WY" and wy_ev["total"]["score"] == 85.2
    assert [x["system_code"] for x in wy_ev["listed"]] == ["WY-MZ-JZ"]

    # bad input: one line each, no traceback
    for args, says in ((["--year", str(YEAR), "--county", "XX"], "no county 'XX' in the registry"),
                       (["--year", "2019"], "nothing recorded for 2019"),
                       (["--year", "2999"], "2999 cannot be evaluated")):
        res = govbus_on(bus, own_db, "evaluate", *args)
        assert res.returncode == 1 and res.stdout == "", res.stdout
        assert says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr

    # the HTML report: self-contained, and what Chromium draws of it
    page = out_html.read_text(encoding="utf-8")
    assert "<script src" not in page and "<link" not in page and "威远县民政局" in page
    res = chromium(out_html, tmp_path / "profile", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    plots = re.findall(r'<div id="[^"]+" class="plotly-graph-div js-plotly-plot"', dom)
    sections = len(re.findall(r"<h2>", dom))
    assert len(plots) >= 5, f"{len(plots)} plots drawn"
    bars = [d for d in re.findall(r'<g class="point"><path d="([^"]*)"', dom) if d and d != "M0,0Z"]
    assert len(bars) >= 6 + 6 * 3, f"{len(bars)} bars drawn"
    assert "威远县民政局 (WY-MZ)" in dom and "85.2" in dom and sections >= 9
    res = chromium(out_html, tmp_path / "profile", "--window-size=1000,1200", f"--screenshot={tmp_path / 's.png'}")
    assert res.returncode == 0, res.stderr[-2000:]
    w, h, pixels = png_pixels((tmp_path / "s.png").read_bytes())
    assert (w, h) == (1000, 1200)
    coloured = sum(1 for row in pixels[::4] for px in row[::4] if max(px) - min(px) > 60)
    bar_blue = sum(1 for row in pixels[::4] for px in row[::4] if abs(px[0] - 0x1f) < 24 and abs(px[1] - 0x77) < 24
                   and abs(px[2] - 0xb4) < 24)
    assert coloured > 500 and bar_blue > 200, (coloured, bar_blue)


async def _at_least(dsn: str, n: int) -> bool:
    return await recorded(dsn) >= n
