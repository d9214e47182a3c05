"""Open data against the real broker, with the parties' own credentials: unconditionally open data to every
authenticated party, conditionally open data to approved parties only and in the approved items, each delivery
desensitized as its catalog entry declares and naming its source and retrieval date; what a party may not read; the
open catalog as a command (text, JSON, DCAT) and as an event stream."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import rdflib
from aiokafka.errors import TopicAuthorizationFailedError

from ops import events
from ops.kafka_io import review_and_wait, send_case, submit_and_wait
from schemas.codec import default_codec
from streams.rules.deadlines import statutory_due
from streams.rules.workcalendar import WorkCalendar
from tests.helpers import (
    Deadlines,
    approved_entry,
    consume,
    decoded,
    delivery,
    eventually,
    govbus_on,
    notices,
    produce,
    reads,
    resident_id,
    seed_catalog,
)
from tests.integration.test_catalog import review, seed, submission, system_event
from tests.integration.test_security import publishes
from topics import registry
from topics.settings import kafka_security

pytestmark = pytest.mark.integration
CODEC = default_codec()
ITEMS = [{"name": "公民身份号码", "type": "identifier", "subject_id": True},
         {"name": "姓名", "type": "string", "personal": True, "open_treatment": "mask:name"},
         {"name": "出生日期", "type": "date", "personal": True, "open_treatment": "generalize:year"},
         {"name": "保障类别", "type": "string", "open_treatment": "none"}]
OPEN = approved_entry("wy-subsidy.yaml", resource_code="WY-MZ-KF-001", name="威远县低保统计开放数据",
                      open_attribute="无条件开放", data_items=ITEMS)
CONDITIONAL = approved_entry("wy-subsidy.yaml", resource_code="WY-MZ-KF-002", name="威远县低保研究数据",
                             open_attribute="有条件开放", open_conditions="公益研究", data_items=ITEMS)
CLOSED = approved_entry("wy-subsidy.yaml")  # 不予开放
RESEARCHER = resident_id("51102519850301002")
OTHER = resident_id("51102519900612003")
SUBJECT = "51102419690817975X"


async def case(schema: str, rec: dict, case_id: str) -> dict:
    (answer,) = await send_case(schema, rec, case_id, 30)
    return answer


async def register(party: str, name: str) -> None:
    answer = await case("govbus.cases.PartyRegistration", events.party_registration(party, name, "portal"),
                        f"party:{party}")
    assert answer["step"] == "registered", answer["message"]


def credentials(bus, tmp_path, party: str):
    """`govbus party credentials PARTY --out FILE`: the file, and the settings of a client that uses it."""
    out = tmp_path / f"{party}.properties"
    done = govbus_on(bus, bus.settings.dsn, "party", "credentials", party, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "is an authenticated requester of open data" in done.stdout
    return out, replace(bus.settings, kafka_security=kafka_security({"GOVBUS_KAFKA_CONFIG": str(out)}))


async def publish(bus, resource: str, items: dict) -> dict:
    rec = delivery(publisher="WY-MZ", resource=resource, subject=SUBJECT, items=items, system_code="WY-MZ-JZ")
    await produce(bus.settings.bootstrap, bus.topic("govbus.deliveries"),
                  [CODEC.encode("govbus.exchange.DataDelivery", rec)], key=SUBJECT.encode())
    return rec


async def on_topic(bus, topic: str, event_id: str) -> list[dict]:
    async def check():
        got = [r for r in decoded(await consume(bus.settings.bootstrap, topic, count=10**6, timeout=0.5))
               if r["event_id"] == event_id]
        return got or None

    return await eventually(check, timeout=30) or []


def tail(bus, party: str, config, limit: int) -> list[str]:
    """`govbus open feed tail PARTY --limit N` with the party's credentials, as its engineer runs it."""
    done = govbus_on(bus, bus.settings.dsn, "open", "feed", "tail", party, "--limit", str(limit), timeout=90,
                     kafka_config=config)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.rule("R-29.1")
@pytest.mark.rule("R-32.1")
@pytest.mark.rule("R-32.2")
@pytest.mark.rule("R-32.3")
async def test_open_feeds_reach_authenticated_parties_desensitized_and_conditional_data_only_the_approved(
        bus, workers, tmp_path):
    await seed_catalog(bus, OPEN, CONDITIONAL, CLOSED)
    workers.start()
    await register(RESEARCHER, "周敏")
    await register(OTHER, "陈刚")

    request = events.case_opening("open_request", RESEARCHER, "WY-MZ-KF-002", "低保政策效果研究", items=["保障类别"],
                                  use="public_interest_research")
    early = await case("govbus.cases.CaseOpening", request, request["event_id"])
    assert early["step"] == "refused" and "has no credentials yet" in early["message"]
    unregistered = govbus_on(bus, bus.settings.dsn, "party", "credentials", resident_id("51102519700101004"),
                             "--out", str(tmp_path / "x.properties"))
    assert unregistered.returncode != 0 and "is not a registered party" in unregistered.stderr
    assert not (tmp_path / "x.properties").exists()

    researcher_file, researcher = credentials(bus, tmp_path, RESEARCHER)
    _, other = credentials(bus, tmp_path, OTHER)
    request = events.case_opening("open_request", RESEARCHER, "WY-MZ-KF-002", "低保政策效果研究", items=["保障类别"],
                                  use="public_interest_research")
    assert (await case("govbus.cases.CaseOpening", request, request["event_id"]))["step"] == "opened"
    approve = events.case_step(request["event_id"], "answer", "WY-MZ", "熊燕", outcome="approved",
                               reason="用于公益研究")
    approved = await case("govbus.cases.CaseStep", approve, request["event_id"])
    assert approved["step"] == "answered" and approved["status"] == "approved", approved["message"]

    items = {"姓名": "唐秀英", "出生日期": "1969-08-17", "保障类别": "农村低保"}
    opened = await publish(bus, "WY-MZ-KF-001", items)
    conditional = await publish(bus, "WY-MZ-KF-002", items)
    closed = await publish(bus, "WY-MZ-DB-001", {"姓名": "唐秀英", "保障类别": "农村低保", "月救助金额": "650"})
    party_topic = registry.open_party_name(RESEARCHER, bus.prefix)
    (granted,) = await on_topic(bus, party_topic, conditional["event_id"])
    assert granted["items"] == {"保障类别": "农村低保"} and granted["grant_id"] == f"open:{request['event_id']}"

    # the researcher's engineer reads both feeds with the researcher's credentials, as the SDK does
    lines = tail(bus, RESEARCHER, researcher_file, 2)
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    (unconditional_line,) = [x for x in lines if "WY-MZ-KF-001" in x]
    assert "{保障类别=农村低保, 出生日期=1969, 姓名=唐**}" in unconditional_line
    assert f"source=WY-MZ 威远县民政局 retrieved={today} unconditional ok" in unconditional_line
    (conditional_line,) = [x for x in lines if "WY-MZ-KF-002" in x]
    assert "{保障类别=农村低保}" in conditional_line and f"grant=open:{request['event_id']}" in conditional_line
    assert not [x for x in lines if "唐秀英" in x or SUBJECT in x or "1969-08-17" in x]

    # the other party reads the unconditionally open data, and nothing of the researcher's feed or a department's
    open_topic = registry.name_of(registry.OPEN_FEED, bus.prefix)
    (public,) = await on_topic(bus, open_topic, opened["event_id"])
    assert public["source_department"] == "WY-MZ" and public["retrieved_on"] == today
    for p in range(registry.OPEN_FEED.partitions):
        if [r for r in await reads(other, open_topic, partition=p) if r.key == b"WY-MZ-KF-001"]:
            break
    else:
        pytest.fail("the other party cannot read the open feed")
    assert await reads(researcher, party_topic)
    for forbidden in (party_topic, registry.feed_name("NJ-YB", bus.prefix)):
        with pytest.raises(TopicAuthorizationFailedError):
            await reads(other, forbidden)
    with pytest.raises(TopicAuthorizationFailedError):
        await publishes(other, bus.topic("govbus.deliveries"), b"x", b"x")
    # a resource that is not open makes no open delivery at all
    everything = decoded(await consume(bus.settings.bootstrap, open_topic, count=10**6, timeout=1))
    assert closed["event_id"] not in {r["event_id"] for r in everything}
    assert {r["resource_code"] for r in everything} == {"WY-MZ-KF-001"}


@pytest.mark.rule("R-30.1")
@pytest.mark.rule("R-29.1")
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
async def test_the_open_catalog_as_a_stream_and_as_a_command_in_text_json_and_dcat(bus, workers, tmp_path):
    workers.start()
    (registered,) = await submit_and_wait([system_event("WY-MZ", "wy-system.yaml")], 30)
    assert registered["status"] == "accepted"
    subsidy = seed("wy-subsidy.yaml")
    unmasked = {**subsidy, "resource_code": "WY-MZ-KF-009", "open_attribute": "无条件开放"}  # 姓名 personal, undeclared
    (refused,) = await submit_and_wait([submission("WY-MZ", unmasked)], 30)
    assert refused["status"] == "refused" and "R-29.1" in refused["rule_ids"]
    assert any("姓名" in r for r in refused["reasons"])
    opened = {**subsidy, "resource_code": "WY-MZ-KF-001", "name": "威远县低保统计开放数据",
              "open_attribute": "无条件开放", "data_items": ITEMS}
    for raw in (opened, subsidy):
        sub = submission("WY-MZ", raw)
        (pending,) = await submit_and_wait([sub], 30)
        assert pending["status"] == "pending_review", pending["reasons"]
        (approved,) = await review_and_wait(review(sub[2]["event_id"], "WY-SJJ"), 30)
        assert approved["status"] == "approved", approved["reasons"]

    stream = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.open.catalog"), count=10**6, timeout=2))
    assert [(e["resource_code"], e["entry"]["open_attribute"]) for e in stream] == [("WY-MZ-KF-001", "unconditional")]

    await register(OTHER, "陈刚")
    party_file = credentials(bus, tmp_path, OTHER)[0]
    text = govbus_on(bus, bus.settings.dsn, "open", "catalog", kafka_config=party_file)  # as a party reads it
    assert text.returncode == 0, text.stderr
    assert "WY-MZ-KF-001  威远县低保统计开放数据  WY-MZ 威远县民政局  无条件开放" in text.stdout
    assert "姓名 (string, personal): mask:name" in text.stdout and "WY-MZ-DB-001" not in text.stdout
    as_json = json.loads(govbus_on(bus, bus.settings.dsn, "open", "catalog", "--format", "json").stdout)
    assert [r["resource_code"] for r in as_json] == ["WY-MZ-KF-001"]
    dcat = govbus_on(bus, bus.settings.dsn, "open", "catalog", "--format", "dcat", "--base-uri",
                     "https://data.example.gov.cn/")
    g = rdflib.Graph().parse(data=dcat.stdout, format="json-ld")
    rows = list(g.query("""PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/>
        SELECT ?d ?url WHERE { ?c a dcat:Catalog ; dcat:dataset ?d . ?d dcat:distribution [ dcat:accessURL ?url ] }"""))
    assert [(str(r.d), str(r.url).rsplit("/", 1)[-1]) for r in rows] == [
        ("https://data.example.gov.cn/dataset/WY-MZ-KF-001", bus.topic("govbus.open.feed"))]


@pytest.mark.rule("R-31.1")
@pytest.mark.rule("R-7.1")
async def test_an_objection_to_the_open_catalog_is_answered_by_the_provider_in_ten_days_extended_once(bus, workers):
    await seed_catalog(bus, OPEN)
    workers.start()
    await register(OTHER, "陈刚")
    rec = events.case_opening("open_catalog_objection", OTHER, "WY-MZ-KF-001", "开放数据含出生日期，应只开放到年份以外")
    case_id = rec["event_id"]
    opened = await case("govbus.cases.CaseOpening", rec, case_id)
    assert opened["step"] == "opened" and (opened["party"], opened["deadline_id"]) == (
        "WY-MZ", f"open_catalog_objection:{case_id}")

    def step(action: str, actor: str, **fields) -> dict:
        return events.case_step(case_id, action, actor, fields.pop("person", "熊燕"), **fields)

    wrong = await case("govbus.cases.CaseStep", step("answer", "NJ-MZ", outcome="accepted", reason="x"), case_id)
    assert wrong["step"] == "refused" and "WY-MZ" in wrong["message"]  # only the provider answers
    no_head = await case("govbus.cases.CaseStep", step("extend", "WY-MZ", extension_days=10, approved_by="熊燕"),
                         case_id)
    assert no_head["step"] == "refused" and "principal head of WY-MZ, 邹凯" in no_head["message"]
    too_long = await case("govbus.cases.CaseStep", step("extend", "WY-MZ", extension_days=11, approved_by="邹凯"),
                          case_id)
    assert too_long["step"] == "refused"
    extended = await case("govbus.cases.CaseStep", step("extend", "WY-MZ", extension_days=10, approved_by="邹凯"),
                          case_id)
    assert extended["step"] == "extended"
    again = await case("govbus.cases.CaseStep", step("extend", "WY-MZ", extension_days=1, approved_by="邹凯"), case_id)
    assert again["step"] == "refused" and "one extension only" in again["message"]

    received = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    cal = WorkCalendar()
    due = cal.add_working_days(statutory_due("open_catalog_objection", received, cal).due, 10).due
    clock = [f"{cal.add_working_days(statutory_due('open_catalog_objection', received, cal).due, 1).due}T09:00+08:00"]
    deadlines = Deadlines(bus, clock)  # it reads the commands only now, past the statute's 10 days
    await deadlines.start()
    try:
        (extension,) = await notices(bus, "extended", 1)  # written in time, judged in time
        assert extension["due_on"] == due.isoformat()
        assert not await notices(bus, "breach", 1, timeout=5)  # past the statute's 10 days, within the extension
        clock[0] = f"{cal.add_working_days(due, 1).due.isoformat()}T09:00:00+08:00"
        (late,) = await notices(bus, "breach", 1)
        assert (late["deadline_id"], late["due_on"]) == (f"open_catalog_objection:{case_id}", due.isoformat())
    finally:
        await deadlines.stop()
    accepted = await case("govbus.cases.CaseStep", step("answer", "WY-MZ", outcome="accepted",
                                                        reason="出生日期改为不开放"), case_id)
    assert accepted["status"] == "accepted" and "the open catalog changes through WY-SJJ" in accepted["message"]
