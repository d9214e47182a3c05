from schemas.provenance import provenance_digest
from streams.departments import load
from streams.exchange import check_delivery
from tests.helpers import delivery

DEPTS = load()


def test_a_well_formed_delivery_passes():
    assert check_delivery(delivery(), DEPTS) is None


def test_unknown_publisher_is_refused():
    refusal = check_delivery(delivery(publisher="XX-NOPE"), DEPTS)
    assert refusal.code == "unknown_publisher"
    assert "XX-NOPE" in refusal.reason and "not a department" in refusal.reason


def test_empty_items_and_bad_event_id_are_refused():
    assert check_delivery(delivery(items={}), DEPTS).code == "invalid_record"
    assert "event_id" in check_delivery(delivery(event_id="has space"), DEPTS).reason


def test_digest_changes_with_any_content():
    a = provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})
    assert a != provenance_digest("NJ-GA", "R", "e", "s", {"x": "2"})
    assert a != provenance_digest("NJ-SCJG", "R", "e", "s", {"x": "1"})
    assert a == provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})
