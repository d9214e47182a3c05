"""Subject identifiers (R-17.2): the 18-digit resident identity number (GB 11643) and the
18-character unified social credit code (GB 32100), with their check characters."""

from __future__ import annotations

from datetime import date

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def resident_id_problem(value: str, today: date | None = None) -> str | None:
    """None when `value` is a valid resident identity number, else the reason."""
    if len(value) != 18:
        return f"a resident identity number has 18 characters, {value!r} has {len(value)}"
    if not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        return f"{value!r}: the first 17 characters must be digits and the last a digit or X"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return f"{value!r}: {value[6:14]} is not a real birth date"
    if born > (today or date.today()) or born.year < 1890:
        return f"{value!r}: birth date {born.isoformat()} is impossible"
    expected = resident_id_check_char(value[:17])
    if value[17] != expected:
        return f"{value!r}: check digit is {value[17]}, GB 11643 gives {expected}"
    return None
