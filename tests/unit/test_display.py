"""Times as an officer reads them: Beijing time, marked, whatever zone the machine runs in."""

from datetime import UTC, datetime

from ops.display import print_case_events, when


def test_a_moment_is_shown_in_beijing_time_and_says_so():
    late = datetime(2026, 12, 7, 16, 30, 5, tzinfo=UTC)  # already the 8th in Beijing, the day deadlines count
    assert when(late) == "2026-12-08 00:30+08"
    assert when(late, seconds=True) == "2026-12-08 00:30:05+08"
    assert when(late.replace(tzinfo=None)) == "2026-12-08 00:30+08"  # naive: UTC, as the ledger keeps time


def test_case_steps_are_printed_with_it(capsys):
    print_case_events([{"occurred_at": datetime(2026, 12, 7, 16, 30, tzinfo=UTC), "case_id": "c1", "step": "opened",
                        "actor": "NJ-MZ", "person": None, "status": "open", "rule_ids": [], "message": "m",
                        "due_on": None, "party": "NJ-GA", "deadline_id": None}])
    assert capsys.readouterr().out.startswith("2026-12-08 00:30+08 c1  opened by NJ-MZ")
