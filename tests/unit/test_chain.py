"""The ledger's hash chain as pure functions: a row commits to the one before it, and the walk names the first
row that does not hold."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from consumers.chain import CHAINED, GENESIS, canonical, extend, first_break, link

DELIVERIES = CHAINED["ledger_deliveries"]
pytestmark = pytest.mark.rule("R-39.1")


def row(n: int, **change) -> tuple:
    values = {"event_id": f"e{n}", "publisher": "NJ-GA", "resource_code": "GA-RK-001",
              "subject_id": "511002198001011239", "system_code": None, "items": {"姓名": "张三", "年龄": 40},
              "occurred_at": datetime(2026, 3, 1, 8, 0, n, 123000, tzinfo=UTC),
              "accepted_at": datetime(2026, 3, 1, 8, 0, n, 456000, tzinfo=UTC), **change}
    return tuple(values[c] for c in DELIVERIES.columns)


def chained(n: int) -> list[tuple]:
    rows = [row(i) for i in range(1, n + 1)]
    hashes = extend(GENESIS, DELIVERIES.name, 1, rows)
    return [(i, h, r) for i, (h, r) in enumerate(zip(hashes, rows, strict=True), 1)]


def test_each_row_commits_to_the_one_before_and_to_its_place():
    h1 = link(GENESIS, DELIVERIES.name, 1, row(1))
    assert len(h1) == 32 and h1 == link(GENESIS, DELIVERIES.name, 1, row(1))
    assert link(h1, DELIVERIES.name, 2, row(2)) != link(GENESIS, DELIVERIES.name, 2, row(2))
    assert link(GENESIS, DELIVERIES.name, 2, row(1)) != h1  # a row moved elsewhere does not verify
    assert link(GENESIS, "ledger_rejects", 1, row(1)) != h1
    assert extend(GENESIS, DELIVERIES.name, 1, [row(1), row(2)]) == [h1, link(h1, DELIVERIES.name, 2, row(2))]


def test_what_the_database_gives_back_hashes_as_what_was_written():
    # jsonb returns 1e+20 as 100000000000000000000 and -0.0 as 0.0; a timestamp in any zone is the same instant
    assert canonical({"a": 1e20, "b": -0.0}) == canonical({"a": 100000000000000000000, "b": 0.0})
    t = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert canonical(t) == canonical(t.astimezone(timezone(timedelta(hours=8))))
    assert canonical(b"\x00\xff") == canonical(memoryview(b"\x00\xff")) == "00ff"
    assert canonical({"a": "1"}) != canonical({"a": 1})  # a number is not its text
    assert canonical({"a": True}) != canonical({"a": 1})
    with pytest.raises(ValueError):
        canonical(datetime(2026, 3, 1))  # naive: which instant?


def test_an_intact_chain_walks_to_its_end():
    rows = chained(5)
    broken, last, head = first_break(DELIVERIES, rows, GENESIS, 1)
    assert broken is None and last == 5 and head == rows[-1][1]
    # from the middle, given the stored hash of the row before
    assert first_break(DELIVERIES, rows[2:], rows[1][1], 3) == (None, 5, head)


@pytest.mark.rule("R-40.1")
def test_a_changed_byte_names_its_row():
    rows = chained(5)
    seq, h, _ = rows[2]
    rows[2] = (seq, h, row(3, subject_id="511002198001011230"))
    broken, last, _ = first_break(DELIVERIES, rows, GENESIS, 1)
    assert (broken.table, broken.seq, broken.key, last) == ("ledger_deliveries", 3, ("e3",), 2)
    assert "changed" in broken.describe() and "row 3 (e3)" in broken.describe()


@pytest.mark.rule("R-40.1")
def test_a_changed_hash_a_removed_row_and_an_unsealed_row_each_break_the_chain():
    rows = chained(5)
    forged = list(rows)
    forged[1] = (2, bytes(32), rows[1][2])
    assert first_break(DELIVERIES, forged, GENESIS, 1)[0].seq == 2
    gone = rows[:2] + rows[3:]
    broken = first_break(DELIVERIES, gone, GENESIS, 1)[0]
    assert broken.seq == 4 and "rows 3..3 are missing" in broken.problem
    unsealed = rows[:3] + [(4, None, rows[3][2])]
    assert "no hash" in first_break(DELIVERIES, unsealed, GENESIS, 1)[0].problem
    # renumbered to close the gap: the hashes commit to the numbers
    renumbered = rows[:2] + [(3, h, r) for _, h, r in rows[3:4]]
    assert first_break(DELIVERIES, renumbered, GENESIS, 1)[0].seq == 3
