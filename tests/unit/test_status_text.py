"""What `govbus status` shows of deadlines, and how it wraps a long line (no broker: the parts it renders)."""

from ops.status import _wrapped, deadline_counts


def test_the_next_due_date_is_one_still_ahead_not_one_already_breached():
    states = [
        {"due_on": "2026-11-30", "closed": False, "breached": True, "provisional": False},
        {"due_on": "2026-11-01", "closed": True, "breached": False, "provisional": False},
        {"due_on": "2026-12-15", "closed": False, "breached": False, "provisional": True},
        {"due_on": "2026-12-09", "closed": False, "breached": False, "provisional": False},
    ]
    assert deadline_counts(states) == {"open": 3, "breached": 1, "provisional": 1, "next_due": "2026-12-09"}
    assert deadline_counts(states[:2])["next_due"] is None  # only a breached one open: nothing coming due


def test_a_long_line_wraps_between_words_and_keeps_names_with_hyphens_and_dots_whole():
    names = ["govbus-catalog_state-changelog/0=12", "govbus.deliveries.accepted/3=120", "NJ-GA", "WY-MZ",
             "govbus-deadlines", "govbus.sharing.inbox/0=7"]
    for shift in range(40):  # wherever the line's end falls
        lines = _wrapped("behind: " + "x" * shift + " " + ", ".join(names * 3), "    ")
        assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
        assert {w.rstrip(",") for w in " ".join(lines).split()} == {"behind:", "x" * shift, *names} - {""}
