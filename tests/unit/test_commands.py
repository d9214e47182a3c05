"""Who acts: a department's command is passed on only in its own name (streams.rules.commands)."""

import pytest

from schemas.codec import default_codec
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
        if inbox is not registry.DEADLINE_COMMANDS:  # the deadline service's, which takes that one schema
            assert schema in takes[inbox], schema
