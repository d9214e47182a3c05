"""The demo `govbus run` starts beside the bus, so a newcomer sees events flow: catalog entries submitted and
approved, a share request answered, a subscription, publications, what arrives on the feeds, and a citizen's
verification case from request to the correction on the feed of the department that had the old value."""

from __future__ import annotations

import asyncio

from topics.settings import REPO_ROOT, Settings

DEMO_PROVIDER = "NJ-GA"
DEMO_SUBSCRIBER = "NJ-MZ"
DEMO_RESOURCE = "GA-RK-001"
DEMO_FILE = REPO_ROOT / "ops" / "seed" / "demo" / "residents.csv"
CATALOG_SEED = REPO_ROOT / "ops" / "seed" / "catalog"
SHARE_REQUESTER = "NJ-YB"
SHARE_RESOURCE = "WY-MZ-DB-001"
SHARE_FILE = REPO_ROOT / "ops" / "seed" / "demo" / "subsidy.csv"
VERIFIED_SUBJECT = "51102419690817975X"  # 唐秀英 of subsidy.csv, whose 保障类别 turns out wrong


async def _catalog(settings: Settings) -> None:
    """Systems and entries registered, submitted and reviewed, as departments and authorities do."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    import yaml

    from ops import events
    from ops.display import print_catalog_decisions
    from ops.kafka_io import review_and_wait, submit_and_wait
    from streams.rules.workcalendar import WorkCalendar
    from topics.registry import CATALOG, name_of
    from topics.views import snapshot

    approved = await snapshot(settings.bootstrap, name_of(CATALOG, settings.topic_prefix))
    steps = [("NJ-GA", "ga-system.yaml", "ga-population.yaml", "NJ-SJJ", "张立新"),
             ("WY-MZ", "wy-system.yaml", "wy-subsidy.yaml", "WY-SJJ", "姚远")]
    for dept, system_file, entry_file, authority, person in steps:
        raw = yaml.safe_load((CATALOG_SEED / entry_file).read_text(encoding="utf-8"))
        if raw["resource_code"].encode() in approved:
            print(f"[catalog] {raw['resource_code']} is already in the catalog")
            continue
        now = datetime.now(UTC)
        system = yaml.safe_load((CATALOG_SEED / system_file).read_text(encoding="utf-8"))
        sys_rec = events.system_registration(system, dept, now)
        print(f"[catalog] {dept} registers information system {system['system_code']}")
        print_catalog_decisions(
            await submit_and_wait([(dept.encode(), "govbus.catalog.SystemRegistration", sys_rec)], 20))
        sub = events.submission_from_file(raw, {}, dept, now)
        print(f"[catalog] {dept} submits {raw['resource_code']} {raw['name']}")
        print_catalog_decisions(await submit_and_wait([(dept.encode(), "govbus.catalog.CatalogSubmission", sub)], 20))
        review = events.catalog_review(sub["event_id"], authority, person, "approve", None)
        print(f"[catalog] {authority} ({person}) approves it")
        print_catalog_decisions(await review_and_wait(review, 20))

    # a law changed 13 working days ago: the civil affairs bureau's update is due in two working days,
    # so the deadline service reminds it at once
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    changed_on = WorkCalendar().working_days_before(today, 13)
    change = events.catalog_change(DEMO_SUBSCRIBER, changed_on.isoformat(), "law", "《社会救助暂行办法》修订", "NJ-SJJ")
    print(f"[catalog] NJ-SJJ records a change of law of {changed_on}: {DEMO_SUBSCRIBER} must update its catalog")
    print_catalog_decisions(await submit_and_wait([(b"NJ-SJJ", "govbus.catalog.CatalogChange", change)], 20))


async def _sharing() -> None:
    """A conditional resource: the medical insurance bureau asks, the county civil affairs bureau approves."""
    from datetime import date, timedelta

    from ops import events
    from ops.display import print_share_decisions
    from ops.kafka_io import send_share

    req = events.share_request(SHARE_REQUESTER, SHARE_RESOURCE, "医疗救助与低保对象衔接", ["姓名", "保障类别"], [],
                               date.today(), date.today() + timedelta(days=365))
    print(f"[share] {SHARE_REQUESTER} asks WY-MZ for {SHARE_RESOURCE} items 姓名, 保障类别 (not 月救助金额)")
    print_share_decisions(await send_share("govbus.sharing.ShareRequest", req, req["event_id"], 20))
    answer = events.share_answer(req["event_id"], "WY-MZ", "熊燕", "approve")
    print("[share] WY-MZ (熊燕) approves: a directed authorization to NJ-YB only, for that scope and purpose")
    print_share_decisions(await send_share("govbus.sharing.ShareAnswer", answer, req["event_id"], 20))


async def _verification(settings: Settings, subsidy: list) -> None:
    """A resident asks WY-MZ to verify her subsidy category, which NJ-YB has received; while the case is open NJ-YB's
    feed flags that datum; WY-MZ finds it wrong and corrects it, and its next publication reaches NJ-YB as the
    correction of what it had."""
    from consumers.queries import who_received
    from ops import events
    from ops.display import print_case_events
    from ops.kafka_io import send_case

    row = next(r for r in subsidy if r.record and r.record["subject_id"] == VERIFIED_SUBJECT)
    while not await who_received(settings.dsn, VERIFIED_SUBJECT, SHARE_RESOURCE):
        await asyncio.sleep(1)  # the ledger has recorded that NJ-YB received the datum
    name = row.record["items"]["姓名"]
    reg = events.party_registration(VERIFIED_SUBJECT, name, "政务服务网")
    print(f"[case] {name} registers on the portal with her identity number")
    print_case_events(await send_case("govbus.cases.PartyRegistration", reg, f"party:{VERIFIED_SUBJECT}", 20))
    opening = events.case_opening("verification", VERIFIED_SUBJECT, SHARE_RESOURCE, "我已转为城市低保，农村低保有误",
                                  subject_id=VERIFIED_SUBJECT, items=["保障类别"])
    case_id = opening["event_id"]
    print(f"[case] {name} asks WY-MZ to verify her 保障类别 in {SHARE_RESOURCE} (校核, R-19.1)")
    print_case_events(await send_case("govbus.cases.CaseOpening", opening, case_id, 20))
    await asyncio.sleep(12)  # a round of publications goes out flagged as under verification
    answer = events.case_step(case_id, "answer", "WY-MZ", "熊燕", outcome="corrected", reason="已于上月转为城市低保")
    print("[case] WY-MZ (熊燕) finds the datum wrong and corrects it; its next publication carries the new value")
    print_case_events(await send_case("govbus.cases.CaseStep", answer, case_id, 20))
    row.record["items"]["保障类别"] = "城市低保"
    print(f"[case] `govbus case show {case_id}` lists every step and who was sent the correction")


async def run_demo(settings: Settings, stop: asyncio.Event) -> None:
    """The demo, until `stop` is set: the catalog and sharing steps once, then publications every 10 s."""
    from consumers.feed import Feed
    from consumers.queries import ledger_counts
    from ops.display import format_feed_record
    from ops.kafka_io import Answers, subscribe
    from ops.publish import publish_rows, read_rows
    from topics.registry import NOTICES

    async def notices() -> None:
        async with Answers(NOTICES, "govbus.deadlines.Notice") as answers:
            while True:
                for n in await answers.wait(bool, 3600):
                    if n["kind"] in ("reminder", "breach", "started"):
                        print(f"[deadline {n['kind']}] {n['message']}")

    notice_task = asyncio.create_task(notices())
    await asyncio.sleep(0.5)
    await _catalog(settings)
    await _sharing()
    await subscribe(DEMO_SUBSCRIBER, DEMO_RESOURCE, True)
    print(f"[demo] {DEMO_SUBSCRIBER} subscribed to {DEMO_RESOURCE} ({DEMO_PROVIDER}'s resident records)")

    async def tail(department: str) -> None:
        async with Feed(department, group_id=f"{settings.topic_prefix}{department}.demo") as feed:
            async for rec in feed:
                print(f"[feed {department}] {format_feed_record(rec)}")

    rows = list(read_rows(DEMO_FILE.read_bytes(), "csv"))
    # one broken row, to show that refusals are recorded with their reason
    rows += list(read_rows(b"subject_id,\xe5\xa7\x93\xe5\x90\x8d\n511002198001011230,x,y\n", "csv"))
    subsidy = list(read_rows(SHARE_FILE.read_bytes(), "csv"))

    async def publish() -> None:
        while not stop.is_set():
            report = await publish_rows(rows, publisher=DEMO_PROVIDER, resource_code=DEMO_RESOURCE,
                                        source=DEMO_FILE.name, bootstrap=settings.bootstrap,
                                        prefix=settings.topic_prefix)
            print(f"[publish {DEMO_PROVIDER}] published {report.published} records to {DEMO_RESOURCE}, "
                  f"{report.rejected} rejected")
            report = await publish_rows(subsidy, publisher="WY-MZ", resource_code=SHARE_RESOURCE,
                                        source=SHARE_FILE.name, bootstrap=settings.bootstrap,
                                        prefix=settings.topic_prefix, system_code="WY-MZ-JZ")
            print(f"[publish WY-MZ] published {report.published} records to {SHARE_RESOURCE}")
            await asyncio.sleep(10)
            n = await ledger_counts(settings.dsn)
            print(f"[ledger] accepted {n['ledger_deliveries']}, delivered to feeds {n['ledger_feed_deliveries']}, "
                  f"rejects {n['ledger_rejects']}")

    try:
        await asyncio.gather(tail(DEMO_SUBSCRIBER), tail(SHARE_REQUESTER), publish(), _verification(settings, subsidy))
    finally:
        notice_task.cancel()
