"""The broker's own security, with real clients (aiokafka and Debian's kcat): who may connect, read, commit,
publish and administer, also after a broker restart, and what a department removed from the registry keeps."""

from __future__ import annotations

import gc
import logging
import shutil
import subprocess
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from consumers.feed import Feed, NotAuthorized
from ops.stack import librdkafka_properties
from schemas.codec import default_codec
from tests.helpers import (
    approved_entry,
    connects,
    consume,
    decoded,
    delivery,
    department,
    feed_records,
    produce,
    produce_keyed,
    properties_file,
    reads,
    seed_catalog,
)
from topics import registry
from topics.access import AccessError, BrokerAdmin, apply_acls
from topics.acls import READ, TOPIC, Acl, department_group_prefix, department_principal
from topics.departments import load
from topics.registry import feed_name, name_of, publish_name
from topics.settings import KafkaSecurity, kafka_options

pytestmark = pytest.mark.integration
KCAT = shutil.which("kcat")


async def publishes(s, topic: str, value: bytes, key: bytes) -> None:
    p = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(s), acks="all", request_timeout_ms=10_000)
    await p.start()
    try:
        await (await p.send(topic, key=key, value=value))
    finally:
        await p.stop()


def kcat(*args: str, config=None) -> subprocess.CompletedProcess:
    return subprocess.run([KCAT, *(["-F", str(config)] if config else []), *args], capture_output=True, text=True,
                          timeout=60)


async def feeds_with_a_record(bus, *codes: str) -> None:
    for code in codes:
        await produce(bus.settings.bootstrap, bus.feed(code), [f"for {code}".encode()])


@pytest.mark.rule("R-39.1")
async def test_without_credentials_or_with_a_wrong_password_nothing_connects(bus, tmp_path):
    await apply_acls(bus.settings)
    anonymous = replace(bus.settings, kafka_security=KafkaSecurity())
    assert not await connects(anonymous)
    yb = await department(bus, "NJ-YB")
    assert await connects(yb)
    assert not await connects(await department(bus, "NJ-YB", password="not-" + yb.kafka_security.password))
    if KCAT:
        assert kcat("-b", bus.settings.bootstrap, "-L", "-m", "5").returncode != 0
        wrong = tmp_path / "wrong.conf"
        wrong.write_text(librdkafka_properties(bus.settings.bootstrap, replace(yb.kafka_security, password="x")))
        listed = kcat("-L", "-m", "5", config=wrong)
        assert listed.returncode != 0 and "Authentication failed" in listed.stderr


@pytest.mark.rule("R-39.1")
async def test_the_feed_sdk_with_another_departments_credentials_says_so_and_leaves_nothing_open(
        bus, monkeypatch, caplog):
    await apply_acls(bus.settings)
    await feeds_with_a_record(bus, "NJ-YB", "NJ-MZ")
    yb = await department(bus, "NJ-YB")
    monkeypatch.delenv("GOVBUS_KAFKA_CONFIG", raising=False)  # a subscriber's engineer with NJ-YB's credentials
    monkeypatch.setenv("GOVBUS_KAFKA_USERNAME", yb.kafka_security.username)
    monkeypatch.setenv("GOVBUS_KAFKA_PASSWORD", yb.kafka_security.password)
    async with Feed("NJ-YB", group_id=department_group_prefix("NJ-YB", bus.prefix) + "sdk") as own:
        assert own.topics == (bus.feed("NJ-YB"),)  # its own feed opens
    with pytest.raises(NotAuthorized) as refused:
        async with Feed("NJ-MZ", group_id=department_group_prefix("NJ-YB", bus.prefix) + "sdk"):
            pytest.fail("NJ-MZ's feed opened with NJ-YB's credentials")
    said = str(refused.value)
    assert said.startswith(f"{yb.kafka_security.username} may not read {bus.feed('NJ-MZ')}:")
    assert "`govbus dept credentials NJ-MZ`" in said
    del refused  # (its traceback holds the client)
    gc.collect()  # a client left open is reported when it is collected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "Unclosed" in r.getMessage()]


@pytest.mark.rule("R-39.1")
async def test_a_department_reads_its_own_feed_commits_with_its_own_groups_and_alters_nothing(bus, tmp_path):
    await apply_acls(bus.settings)
    await feeds_with_a_record(bus, "NJ-YB", "NJ-MZ")
    yb = await department(bus, "NJ-YB")
    own_group = department_group_prefix("NJ-YB", bus.prefix) + "case-system"

    assert [r.value for r in await reads(yb, bus.feed("NJ-YB"), group=own_group)] == [b"for NJ-YB"]
    with pytest.raises(TopicAuthorizationFailedError):
        await reads(yb, bus.feed("NJ-MZ"))
    with pytest.raises(GroupAuthorizationFailedError):
        await reads(yb, bus.feed("NJ-YB"), group=department_group_prefix("NJ-MZ", bus.prefix) + "case-system")

    admin = AIOKafkaAdminClient(bootstrap_servers=yb.bootstrap, **kafka_options(yb))
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(bus.prefix + "govbus.feed.NJ-YB-copy", 1, 1)])
        assert [code for _name, code, *_ in resp.topic_errors] == [29]  # TOPIC_AUTHORIZATION_FAILED
        assert bus.feed("NJ-MZ") not in await admin.list_topics()  # not even its name
        [described] = await admin.describe_topics([bus.feed("NJ-MZ")])
        assert described["error_code"] == 29
    finally:
        await admin.close()
    grab = Acl(f"User:{department_principal('NJ-YB', bus.prefix)}", TOPIC, bus.feed("NJ-MZ"), 3, READ)
    async with BrokerAdmin(yb) as as_yb:
        with pytest.raises(AccessError):
            await as_yb.create([grab])

    if KCAT:  # the file `govbus dept credentials` writes, as kcat takes it
        conf = tmp_path / "yb.conf"
        conf.write_text(librdkafka_properties(yb.bootstrap, yb.kafka_security))
        own = kcat("-C", "-t", bus.feed("NJ-YB"), "-p", "0", "-o", "beginning", "-e", "-q", config=conf)
        assert own.stdout.strip() == "for NJ-YB", own.stderr
        other = kcat("-C", "-t", bus.feed("NJ-MZ"), "-p", "0", "-o", "beginning", "-e", "-q", config=conf)
        assert "for NJ-MZ" not in other.stdout and "authorization failed" in other.stderr.lower()


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
async def test_a_department_cannot_publish_in_another_departments_name(bus, workers, tmp_path):
    await apply_acls(bus.settings)
    codec = default_codec()
    yb = await department(bus, "NJ-YB")
    as_ga = delivery(publisher="NJ-GA")
    value, key = codec.encode("govbus.exchange.DataDelivery", as_ga), as_ga["subject_id"].encode()
    # the broker: only NJ-GA writes NJ-GA's inbound topic, only the bus's operators the shared one
    for topic in (publish_name("NJ-GA", bus.prefix), name_of(registry.DELIVERIES, bus.prefix)):
        with pytest.raises(TopicAuthorizationFailedError):
            await publishes(yb, topic, value, key)
    if KCAT:
        conf = tmp_path / "yb.conf"
        conf.write_text(librdkafka_properties(yb.bootstrap, yb.kafka_security))
        sent = subprocess.run([KCAT, "-F", str(conf), "-P", "-t", publish_name("NJ-GA", bus.prefix), "-k", "x"],
                              input=b"not for NJ-YB to say", capture_output=True, timeout=60)
        assert b"authorization failed" in sent.stderr.lower()
    # the bus: on its own inbound topic, a record naming another publisher is refused and raised as tampering
    workers.start()
    await publishes(yb, publish_name("NJ-YB", bus.prefix), value, key)
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=1), "govbus.ops.Reject")
    assert [(r["code"], r["source_topic"]) for r in rejects] == [("suspected_tampering",
                                                                   publish_name("NJ-YB", bus.prefix))]
    assert "NJ-YB published" in rejects[0]["reason"] and "'NJ-GA'" in rejects[0]["reason"]
    alerts = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=1), "govbus.ops.Alert")
    assert [(a["kind"], a["department"], a["source_department"]) for a in alerts] == [
        ("suspected_tampering", "NJ-YB", "NJ-GA")]
    assert await consume(bus.settings.bootstrap, bus.topic("govbus.deliveries.accepted"), count=1, timeout=2) == []


@pytest.mark.rule("R-39.1")
async def test_credentials_and_acls_survive_a_broker_restart(bus, own_kafka):
    if own_kafka is None:
        pytest.skip("the broker is not the suite's own")
    await apply_acls(bus.settings)
    await feeds_with_a_record(bus, "NJ-YB", "NJ-MZ")
    yb = await department(bus, "NJ-YB")
    await own_kafka.stop()
    await own_kafka.start()
    assert not await connects(replace(bus.settings, kafka_security=KafkaSecurity()))
    assert [r.value for r in await reads(yb, bus.feed("NJ-YB"))] == [b"for NJ-YB"]
    with pytest.raises(TopicAuthorizationFailedError):
        await reads(yb, bus.feed("NJ-MZ"))
    with pytest.raises(GroupAuthorizationFailedError):
        await reads(yb, bus.feed("NJ-YB"), group=department_group_prefix("NJ-MZ", bus.prefix) + "x")


@pytest.mark.rule("R-39.1")
async def test_a_department_removed_from_the_registry_loses_everything(bus):
    registered = load()
    await apply_acls(bus.settings, registered)
    yb = await department(bus, "NJ-YB")
    principal = f"User:{department_principal('NJ-YB', bus.prefix)}"
    async with BrokerAdmin(bus.settings) as admin:
        assert any(a.principal == principal for a in await admin.acls())
    report = await apply_acls(bus.settings, {c: d for c, d in registered.items() if c != "NJ-YB"})
    assert report.principals_removed == [department_principal("NJ-YB", bus.prefix)]
    assert {a.principal for a in report.deleted} == {principal}
    async with BrokerAdmin(bus.settings) as admin:
        assert not any(a.principal == principal for a in await admin.acls())
    assert not await connects(yb)
    assert feed_name("NJ-YB", bus.prefix)  # its topics stay for the record; nobody but the bus reads them


@pytest.mark.rule("R-39.1")
async def test_up_again_on_a_running_stack_leaves_its_processes_passwords_as_they_are(bus, tmp_path):
    """`govbus up` (and `govbus restore`, which starts with it) on a stack that runs: the processes' files keep their
    passwords and the broker still takes them, so a running process that reconnects is let in."""
    from ops.stack import apply_access, process_credentials
    from topics.acls import PROCESSES
    from topics.settings import read_properties, security_from_properties

    local = replace(bus.settings, kafka_bootstrap=None, state_dir=tmp_path)  # as the local stack's own `up`
    assert local.local_kafka and local.bootstrap == bus.settings.bootstrap
    await apply_access(local)
    first = {p: process_credentials(local, p).read_text() for p in PROCESSES}
    await apply_access(local)
    assert {p: process_credentials(local, p).read_text() for p in PROCESSES} == first
    for p in PROCESSES:
        sec = security_from_properties(read_properties(process_credentials(local, p)))
        assert await connects(replace(bus.settings, kafka_security=sec)), p


@pytest.mark.rule("R-39.1")
async def test_the_cli_with_credentials_the_broker_refuses_says_who_may_not_do_what_in_one_line(bus, tmp_path):
    import os
    import sys
    from pathlib import Path

    await apply_acls(bus.settings)
    await feeds_with_a_record(bus, "NJ-YB", "NJ-MZ")
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    yb = await department(bus, "NJ-YB")
    conf = properties_file(yb, tmp_path / "nj-yb.properties")
    user = yb.kafka_security.username
    rows = tmp_path / "rows.json"
    rows.write_text('[{"subject_id": "511002198001011239", "姓名": "张三"}]', encoding="utf-8")

    def govbus(*args: str, config: Path = conf) -> subprocess.CompletedProcess:
        env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_KAFKA_CONFIG": str(config)}
        return subprocess.run([str(Path(sys.executable).parent / "govbus"), *args], capture_output=True, text=True,
                              env=env, timeout=120)

    said = {
        "another department's feed": govbus("feed", "tail", "NJ-MZ", "--limit", "1"),
        "another department's group": govbus("feed", "tail", "NJ-YB", "--group", f"{bus.prefix}NJ-MZ.x"),
        "another department's inbound topic": govbus("publish", "--as", "NJ-GA", "--resource", "GA-RK-001",
                                                     str(rows)),
        "an operators' command": govbus("party", "register", "511002198001011239", "--name", "测试", "--wait", "1"),
        "a password that is no longer": govbus("subscribe", "NJ-YB", "GA-RK-001", config=properties_file(
            replace(yb, kafka_security=replace(yb.kafka_security, password="old")), tmp_path / "old.properties")),
    }
    for what, out in said.items():
        assert out.returncode == 1 and "Traceback" not in out.stderr, (what, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, (what, out.stderr)
    assert f"{user} may not read {bus.feed('NJ-MZ')}" in said["another department's feed"].stderr
    assert (f"{user} may not commit with the consumer group {bus.prefix}NJ-MZ.x"
            in said["another department's group"].stderr)
    assert (f"the broker refuses {user} the topic {publish_name('NJ-GA', bus.prefix)}"
            in said["another department's inbound topic"].stderr)
    assert f"answers but did not let {user} in: check the credentials" in said["a password that is no longer"].stderr
    assert (f"or {user} may not read it" in said["an operators' command"].stderr
            and f"`govbus acls list --principal {user}`" in said["an operators' command"].stderr)

    # its own feed it reads, from the start, and a look at it leaves no consumer group behind (none to show lagging)
    await produce_keyed(bus.settings.bootstrap, bus.feed("NJ-YB"), feed_records(1, "NJ-YB"))
    own = govbus("feed", "tail", "NJ-YB", "--limit", "1")
    assert own.returncode == 0 and "居民0" in own.stdout, own.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap, **kafka_options(bus.settings))
    await admin.start()
    try:
        groups = [g for g, _ in await admin.list_consumer_groups()]
    finally:
        await admin.close()
    assert not [g for g in groups if g.startswith(department_group_prefix("NJ-YB", bus.prefix))], groups


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
async def test_a_department_acts_only_in_its_own_name(bus, workers, tmp_path):
    """Catalog reviews, share answers, case steps and deadline extensions name the department that acts. A department
    sends them on its own inbound topic, which only it may write; the bus passes them on to their inboxes once the
    department named is the one that wrote it. The inboxes themselves are the bus's."""
    import os
    import sys
    import uuid
    from datetime import UTC, datetime
    from pathlib import Path

    await apply_acls(bus.settings)
    codec = default_codec()
    ga = await department(bus, "NJ-GA")
    yb = await department(bus, "NJ-YB")

    def review(reviewer: str) -> bytes:
        return codec.encode("govbus.catalog.CatalogReview", {
            "event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "reviewer": reviewer,
            "reviewer_person": "张立新", "submission_id": "sub-1", "decision": "approve", "reason": None})

    request = codec.encode("govbus.sharing.ShareRequest", {
        "event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "requester": "NJ-YB",
        "resource_code": "GA-RK-001", "purpose": "低保资格核查", "items": ["姓名"], "subjects": [],
        "valid_from": "2026-12-01", "valid_until": "2027-12-01"})
    # the inboxes are no department's to write
    for inbox in (registry.CATALOG_INBOX, registry.SHARING_INBOX, registry.CASES_INBOX, registry.DEADLINE_COMMANDS):
        with pytest.raises(TopicAuthorizationFailedError):
            await publishes(ga, name_of(inbox, bus.prefix), review("NJ-SJJ"), b"k")
    workers.start()
    # NJ-GA, on its own inbound topic, reviewing as the authority NJ-SJJ: refused, and raised as tampering
    await publishes(ga, publish_name("NJ-GA", bus.prefix), review("NJ-SJJ"), b"NJ-SJJ")
    # NJ-YB asking in its own name: passed on to the sharing inbox as it was sent
    await publishes(yb, publish_name("NJ-YB", bus.prefix), request, b"req-1")
    passed = await consume(bus.settings.bootstrap, bus.topic("govbus.sharing.inbox"), count=1)
    sent = await consume(bus.settings.bootstrap, publish_name("NJ-YB", bus.prefix), count=1)
    assert [(r.key, r.value, r.timestamp) for r in passed] == [(b"req-1", request, sent[0].timestamp)]
    rejects = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.rejects"), count=1), "govbus.ops.Reject")
    assert [(r["code"], r["source_topic"]) for r in rejects] == [("suspected_tampering",
                                                                   publish_name("NJ-GA", bus.prefix))]
    assert "CatalogReview whose reviewer is 'NJ-SJJ'" in rejects[0]["reason"]
    alerts = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.alerts"), count=1), "govbus.ops.Alert")
    assert [(a["kind"], a["department"], a["source_department"]) for a in alerts] == [
        ("suspected_tampering", "NJ-GA", "NJ-SJJ")]
    assert await consume(bus.settings.bootstrap, bus.topic("govbus.catalog.inbox"), count=1, timeout=2) == []

    # the command a department's officer types goes the same way: in another's name the broker refuses it at once
    conf = properties_file(ga, tmp_path / "nj-ga.properties")
    argv = ["catalog", "review", "sub-1", "--as", "NJ-SJJ", "--person", "张立新", "--approve", "--wait", "0"]
    env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_KAFKA_CONFIG": str(conf)}
    out = subprocess.run([str(Path(sys.executable).parent / "govbus"), *argv], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1, out.stderr
    assert f"the broker refuses {ga.kafka_security.username} the topic {publish_name('NJ-SJJ', bus.prefix)}" \
        in out.stderr


@pytest.mark.rule("R-27.1")
@pytest.mark.rule("R-39.1")
async def test_a_department_subscribes_itself_and_only_itself(bus, workers, tmp_path):
    """With its own credentials a department subscribes to what is shared unconditionally, without an operator: the
    subscription goes on its own inbound topic and the worker passes it on. Another department's it cannot make."""
    import os
    import sys
    from pathlib import Path

    await apply_acls(bus.settings)
    await seed_catalog(bus, approved_entry("ga-population.yaml"))
    yb, ga = await department(bus, "NJ-YB"), await department(bus, "NJ-GA")
    conf = properties_file(yb, tmp_path / "nj-yb.properties")
    env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix, "GOVBUS_KAFKA_CONFIG": str(conf)}

    def govbus(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).parent / "govbus"), *argv], capture_output=True, text=True,
                              timeout=120, env=env)

    await workers.started()
    own = govbus("subscribe", "NJ-YB", "GA-RK-001")
    assert own.returncode == 0 and "NJ-YB subscribed to GA-RK-001" in own.stdout, own.stderr
    other = govbus("subscribe", "NJ-MZ", "GA-RK-001")
    assert other.returncode == 1
    assert f"the broker refuses {yb.kafka_security.username} the topic {publish_name('NJ-MZ', bus.prefix)}" \
        in other.stderr
    subs = decoded(await consume(bus.settings.bootstrap, bus.topic("govbus.subscriptions"), count=1),
                   "govbus.exchange.Subscription")
    assert [(s["subscriber"], s["resource_code"], s["active"]) for s in subs] == [("NJ-YB", "GA-RK-001", True)]

    # what NJ-GA publishes from then on reaches NJ-YB's feed
    published = delivery(publisher="NJ-GA")
    value = default_codec().encode("govbus.exchange.DataDelivery", published)
    await publishes(ga, publish_name("NJ-GA", bus.prefix), value, published["subject_id"].encode())
    fed = decoded(await consume(bus.settings.bootstrap, feed_name("NJ-YB", bus.prefix), count=1),
                  "govbus.exchange.FeedDelivery")
    assert [(f["event_id"], f["grant_id"]) for f in fed] == [(published["event_id"],
                                                              "subscription:GA-RK-001:NJ-YB")]


@pytest.mark.rule("R-39.1")
async def test_a_record_the_broker_refuses_is_an_error_not_a_success(bus, tmp_path):
    """The broker refuses a department's write of the calendar (the authority's) only when the record arrives, not
    when the client connects: the CLI waits for that answer instead of saying it published."""
    import os
    import sys
    from pathlib import Path

    await apply_acls(bus.settings)
    ga = await department(bus, "NJ-GA")
    year = tmp_path / "2027.yaml"
    year.write_text("year: 2027\nsource: 国务院办公厅关于2027年部分节假日安排的通知\nholidays: [2027-01-01]\n",
                    encoding="utf-8")
    env = {**os.environ, "GOVBUS_TOPIC_PREFIX": bus.prefix,
           "GOVBUS_KAFKA_CONFIG": str(properties_file(ga, tmp_path / "nj-ga.properties"))}
    out = subprocess.run([str(Path(sys.executable).parent / "govbus"), "calendar", "publish", str(year)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1 and "published" not in out.stdout, out.stdout
    assert f"the broker refuses {ga.kafka_security.username} the topic {bus.topic('govbus.calendar')}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert await consume(bus.settings.bootstrap, bus.topic("govbus.calendar"), count=1, timeout=2) == []
