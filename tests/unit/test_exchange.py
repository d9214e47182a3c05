from datetime import UTC, datetime

from schemas.provenance import provenance_digest
from streams.departments import load
from streams.exchange import Subscriptions, check_delivery, route
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


def test_route_to_subscribers_but_never_back_to_the_publisher():
    subs = Subscriptions()
    subs.apply("NJ-MZ", "GA-RK-001", True)
    subs.apply("NJ-RS", "GA-RK-001", True)
    subs.apply("NJ-GA", "GA-RK-001", True)
    subs.apply("NJ-RS", "GA-RK-001", False)
    d = delivery()
    out = route(d, subs.of("GA-RK-001"), datetime.now(UTC))
    assert [r["subscriber"] for r in out] == ["NJ-MZ"]
    assert out[0]["digest"] == provenance_digest("NJ-GA", "GA-RK-001", d["event_id"], d["subject_id"], d["items"])
    assert route(d, subs.of("OTHER"), datetime.now(UTC)) == []


def test_digest_changes_with_any_content():
    a = provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})
    assert a != provenance_digest("NJ-GA", "R", "e", "s", {"x": "2"})
    assert a != provenance_digest("NJ-SCJG", "R", "e", "s", {"x": "1"})
    assert a == provenance_digest("NJ-GA", "R", "e", "s", {"x": "1"})
