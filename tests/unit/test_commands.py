"""Who acts: a department's command is passed on only in its own name (streams.rules.commands)."""

import pytest

from schemas.codec import default_codec
from streams.outputs import Outputs
from streams.rules.commands import COMMANDS, acting, check_command
from topics import registry


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
def test_a_command_in_the_senders_own_name_goes_on_one_in_anothers_is_tampering():
    review = {"reviewer": "NJ-SJJ", "submission_id": "s"}
    assert check_command("govbus.catalog.CatalogReview", review, "NJ-SJJ") is None
    assert check_command("govbus.catalog.CatalogReview", review, None) is None  # the operators' topic
    refusal = check_command("govbus.catalog.CatalogReview", review, "NJ-GA")
    assert refusal.code == "suspected_tampering" and refusal.rule_ids == ("R-39.1", "R-40.1")
    assert "NJ-GA sent on its own inbound topic a CatalogReview whose reviewer is 'NJ-SJJ'" in refusal.reason


@pytest.mark.rule("R-39.1")
@pytest.mark.rule("R-40.1")
def test_a_department_asks_to_extend_a_deadline_but_never_starts_or_closes_one():
    schema = "govbus.deadlines.DeadlineCommand"
    assert check_command(schema, {"action": "extend", "actor": "NJ-GA"}, "NJ-GA") is None
    for action in ("answer", "start", "anything"):
        refusal = check_command(schema, {"action": action, "actor": "NJ-GA"}, "NJ-GA")
        assert refusal.code == "suspected_tampering" and refusal.rule_ids == ("R-39.1", "R-40.1")
        assert f"whose action is {action!r}: a department may only send extend" in refusal.reason
        assert check_command(schema, {"action": action, "actor": "NJ-GA"}, None) is None  # the operators' topic


def test_what_is_no_command_is_refused_on_an_inbound_topic_with_what_is_carried_there():
    refusal = check_command("govbus.ops.Alert", {}, "NJ-GA")
    assert refusal.code == "wrong_schema" and "DataDelivery" in refusal.reason and "ShareRequest" in refusal.reason


def test_each_command_names_who_acts_in_a_field_of_its_schema_and_goes_to_an_inbox_that_carries_it():
    codec = default_codec()
    for schema, (inbox, field) in COMMANDS.items():
        newest = max((v for v in codec.versions if v.name == schema), key=lambda v: v.version)
        assert field in [f["name"] for f in newest.schema["fields"]], schema
        assert schema.rsplit(".", 1)[1] in inbox.value_schema or schema == inbox.value_schema, (schema, inbox.name)
        assert inbox in registry.FIXED
    assert acting("govbus.sharing.ShareAnswer", {"provider": "WY-MZ"}) == "WY-MZ"
    assert acting("govbus.exchange.DataDelivery", {"publisher": "NJ-GA"}) is None


def test_each_command_passed_on_to_an_agents_inbox_is_one_that_agent_takes():
    from streams import case_agent, catalog_agent, sharing_agent

    takes = {registry.CATALOG_INBOX: catalog_agent.HANDLERS, registry.SHARING_INBOX: sharing_agent.HANDLERS,
             registry.CASES_INBOX: case_agent.HANDLERS}
    for schema, (inbox, _) in COMMANDS.items():
        # the deadline service's, which takes that one schema, and the subscriptions the stream reads as a table
        if inbox not in (registry.DEADLINE_COMMANDS, registry.SUBSCRIPTIONS):
            assert schema in takes[inbox], schema


class Kept(Outputs):
    """Outputs that keep what is added, as (topic, key, value, timestamp)."""

    def __init__(self, partitions):
        super().__init__([], partitions)
        self.kept = []

    def add(self, topic, key, value, *, hashed=None, partition=None, timestamp=None):
        self.kept.append((topic, key, value, timestamp))


def test_the_stream_passes_a_command_on_refuses_one_in_anothers_name_and_survives_a_broken_one():
    """The delivery stream's own handling (streams.deliveries.DeliveryStream._decode), no broker."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from ops.bench.judge import fresh_stream
    from streams.deliveries import PARTITIONS
    from topics.registry import name_of, publish_name

    codec = default_codec()
    review = codec.encode("govbus.catalog.CatalogReview", {
        "event_id": "e1", "occurred_at": datetime.now(UTC), "reviewer": "NJ-SJJ", "reviewer_person": "张立新",
        "submission_id": "s", "decision": "approve", "reason": None})
    stream, out = fresh_stream(), Kept(PARTITIONS)

    def read(topic: str, value: bytes):
        return SimpleNamespace(topic=topic, partition=0, offset=7, key=b"k", value=value, timestamp=1_700_000_000_000)

    assert stream._decode(read(publish_name("NJ-SJJ"), review), out) is None  # noqa: SLF001
    assert out.kept == [(name_of(registry.CATALOG_INBOX), b"k", review, 1_700_000_000_000)]
    out.kept.clear()
    stream._decode(read(publish_name("NJ-GA"), review), out)  # noqa: SLF001
    assert sorted(t for t, *_ in out.kept) == sorted([name_of(registry.REJECTS), name_of(registry.ALERTS)])
    out.kept.clear()
    stream._decode(read(publish_name("NJ-SJJ"), review[:12] + b"\xff" * 5), out)  # noqa: SLF001
    assert [t for t, *_ in out.kept] == [name_of(registry.REJECTS)]


@pytest.mark.rule("R-27.1")
def test_a_department_subscribes_itself_to_what_is_shared_unconditionally():
    """A subscription on the department's own topic goes on, keyed as the compacted subscriptions topic is; one
    to a resource shared on conditions is refused (its data would not reach the feed anyway)."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from ops.bench.judge import fresh_stream
    from streams import app
    from streams.deliveries import PARTITIONS
    from tests.helpers import approved_entry
    from topics.registry import name_of, publish_name

    codec = default_codec()
    stream = fresh_stream()
    unconditional = approved_entry("ga-population.yaml")
    conditional = approved_entry("ga-population.yaml", resource_code="GA-RK-002", share_attribute="conditional",
                                 share_basis="《居民身份证法》")
    assert unconditional["entry"]["share_attribute"] == "unconditional"
    for e in (unconditional, conditional):
        app.catalog.entries[e["resource_code"]] = e

    def subscription(resource: str, active: bool = True) -> bytes:
        return codec.encode("govbus.exchange.Subscription", {"event_id": f"e-{resource}", "occurred_at":
                            datetime.now(UTC), "subscriber": "NJ-YB", "resource_code": resource, "active": active})

    def read(value: bytes):
        return SimpleNamespace(topic=publish_name("NJ-YB"), partition=0, offset=7, key=b"anything", value=value,
                               timestamp=1_700_000_000_000)

    try:
        out, sent = Kept(PARTITIONS), subscription("GA-RK-001")
        stream._decode(read(sent), out)  # noqa: SLF001
        assert out.kept == [(name_of(registry.SUBSCRIPTIONS), b"GA-RK-001|NJ-YB", sent, 1_700_000_000_000)]
        out = Kept(PARTITIONS)
        stream._decode(read(subscription("GA-RK-002")), out)  # noqa: SLF001
        assert [t for t, *_ in out.kept] == [name_of(registry.REJECTS)]
        reject = codec.decode(out.kept[0][2]).record
        assert "shared on conditions" in reject["reason"] and reject["rule_ids"] == ["R-26.1"]
        out = Kept(PARTITIONS)
        stream._decode(read(subscription("GA-RK-002", active=False)), out)  # ending one is always taken
        assert [(t, k) for t, k, *_ in out.kept] == [(name_of(registry.SUBSCRIPTIONS), b"GA-RK-002|NJ-YB")]
    finally:
        for e in (unconditional, conditional):
            app.catalog.entries.pop(e["resource_code"], None)
