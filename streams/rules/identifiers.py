"""Subject identifiers (R-17.2): the 18-digit resident identity number (GB 11643) and the 18-character unified
social credit code (GB 32100), with their check characters."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

# --------------------------------------------------------------------------- resident identity number (GB 11643)

_ID_CHECK = "10X98765432"
_DIGITS = frozenset("0123456789")  # str.isdigit() would also let full-width and other Unicode digits in
_RESIDENT_LAST = frozenset("0123456789Xx")  # the last character of a resident identity number, as written
# GB 11643's own example 440524188001010014 was born in 1880; the floor only catches a mistyped
# century (1098, 0198), so it sits well below anyone alive when the numbers were first issued (1984).
_EARLIEST_BIRTH = date(1850, 1, 1)


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character (0-9 or X) for the first 17 digits (R-17.2).

    GB 11643 weighs the digit i places left of the check character by 2**i mod 11. Read as a number in
    base 13, the 17 digits weigh 13**(i-1), and 13 = 2 (mod 11): so the weighted sum is, mod 11, twice that
    number, which int() reads in one call."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError(f"the check character is computed from 17 digits 0-9, not {first17!r}")
    return _ID_CHECK[2 * int(first17, 13) % 11]


@lru_cache(maxsize=1 << 16)  # about 180 years of days
def _birth_date(text: str) -> date | None:
    """The date written YYYYMMDD, None if there is no such day."""
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def resident_id_problem(value: str, today: date | None = None) -> str | None:
    """R-17.2: None when `value` is a valid resident identity number, else the reason."""
    if len(value) != 18:
        if len(value) == 15 and set(value) <= _DIGITS:
            return (f"{value!r} looks like an old 15-digit identity number; "
                    "records are keyed by the 18-digit resident identity number")
        return f"a resident identity number has 18 characters, {value!r} has {len(value)}"
    if not (value[:17].isascii() and value[:17].isdigit()):  # ASCII 0-9 only
        for pos, c in enumerate(value[:17], 1):
            if c not in _DIGITS:
                return f"{value!r}: character {pos} is {c!r}; the first 17 characters must be digits 0-9"
    if value[17] == "x":
        return f"{value!r}: the check character must be an uppercase X, not a lowercase x"
    if value[17] not in _DIGITS and value[17] != "X":
        return f"{value!r}: character 18 (the check character) is {value[17]!r}; it must be a digit 0-9 or X"
    born = _birth_date(value[6:14])
    if born is None:
        return f"{value!r}: characters 7-14 (the birth date) read {value[6:14]}, which is not a real date"
    today = today or date.today()
    if born > today:
        return f"{value!r}: birth date {born.isoformat()} (characters 7-14) is in the future"
    if born < _EARLIEST_BIRTH:
        return (f"{value!r}: birth date {born.isoformat()} (characters 7-14) is before "
                f"{_EARLIEST_BIRTH.year}, which cannot be right")
    expected = resident_id_check_char(value[:17])
    if value[17] != expected:
        return f"{value!r}: check digit is {value[17]}, GB 11643 gives {expected}"
    return None


# --------------------------------------------------------------------------- unified social credit code (GB 32100)

# GB 32100-2015 leaves out I, O, S, V and Z so they cannot be mistaken for 1, 0, 5, U and 2.
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_LOOKALIKE = {"I": "1", "O": "0", "S": "5", "V": "U", "Z": "2"}
# Position 1: the registration management department (1 organisation establishment, 5 civil affairs,
# 9 market regulation, N agriculture and rural affairs, Y other, ...); N and Y codes are as valid as the rest.
_USCC_DEPARTMENTS = frozenset("123456789ABCDEFGHNY")


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a unified social credit code (R-17.2)."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def uscc_problem(value: str) -> str | None:
    """R-17.2: None when `value` is a valid unified social credit code, else the reason.

    Positions 9-17 hold the organisation code (GB 11714), whose own ninth character is a check
    digit too. It is deliberately not enforced: codes issued by some registration authorities do
    not reliably satisfy it, and the GB 32100 check character already covers all 17 characters.
    """
    if len(value) != 18:
        return f"a unified social credit code has 18 characters, {value!r} has {len(value)}"
    for pos, c in enumerate(value, 1):
        if c.islower():
            return f"{value!r}: letters must be uppercase (character {pos} is {c!r})"
    for pos, c in enumerate(value, 1):
        if c in _USCC_LOOKALIKE:
            return (f"{value!r}: character {pos} is {c!r}, a letter GB 32100 never uses (it leaves out "
                    f"I, O, S, V and Z); did you mean {_USCC_LOOKALIKE[c]!r}?")
        if c not in _USCC_VALUE:
            return (f"{value!r}: character {pos} is {c!r}; a unified social credit code uses only the digits "
                    "0-9 and the capital letters A-H, J-N, P-R, T, U, W-Y")
    if value[0] not in _USCC_DEPARTMENTS:
        return (f"{value!r}: character 1 (the registration management department code) is {value[0]!r}, "
                "which names no registration department; it is one of 1-9, A-H, N or Y")
    if not set(value[2:8]) <= _DIGITS:
        return (f"{value!r}: characters 3-8 (the administrative division code) read {value[2:8]}; "
                "they must be 6 digits")
    expected = uscc_check_char(value[:17])
    if value[17] != expected:
        return f"{value!r}: check character is {value[17]}, GB 32100 gives {expected}"
    return None


# --------------------------------------------------------------------------- either


def _looks_like_resident_id(value: str) -> bool:
    # a lowercase x still counts, so the officer hears "X must be uppercase" about the right kind
    first = value[:17]
    return len(value) == 18 and first.isascii() and first.isdigit() and value[17] in _RESIDENT_LAST


def subject_problem(value: str, today: date | None = None) -> str | None:
    """R-17.2: None when `value` is a valid subject identifier (resident or organisation), else the reason.

    The kind is judged by shape: 17 digits and then a digit or X is a resident identity number,
    anything else a unified social credit code. A few valid unified social credit codes are all
    digits; they are still judged by the resident rules (a mistyped resident identity number would
    otherwise pass one time in 31), and the reason says so: such a subject is checked with
    `uscc_problem` by a caller that knows it is an organisation.
    """
    if len(value) != 18:
        return (f"{value!r} has {len(value)} characters; a resident identity number and a "
                "unified social credit code both have 18")
    if _looks_like_resident_id(value):
        problem = resident_id_problem(value, today)
        if problem is None:
            return None
        note = ("; it would be a valid unified social credit code, so if the subject is an organisation "
                "check it as one") if uscc_problem(value) is None else ""
        return f"taken as a resident identity number (17 digits then a digit or X): {problem}{note}"
    problem = uscc_problem(value)
    return None if problem is None else f"taken as a unified social credit code: {problem}"


def subject_kind(item_name: str | None) -> str | None:
    """What a catalog entry's subject item names, as its name says (R-17.2): `resident` (公民身份号码, 身份证号...),
    `organisation` (统一社会信用代码), or None when the name does not say."""
    if not item_name:
        return None
    if "信用代码" in item_name:
        return "organisation"
    if "身份" in item_name:
        return "resident"
    return None


def subject_kind_problem(value: str, kind: str) -> str | None:
    """None when `value` (a valid subject identifier, `subject_problem` says so) is of `kind`, else what it is
    instead, judged by shape as `subject_problem` judges it."""
    resident = _looks_like_resident_id(value)
    if kind == "resident" and not resident:
        return f"{value} is a unified social credit code, an organisation's, not a resident identity number"
    if kind == "organisation" and resident and uscc_problem(value) is not None:  # a few codes are all digits
        return f"{value} is a resident identity number, not an organisation's unified social credit code"
    return None
