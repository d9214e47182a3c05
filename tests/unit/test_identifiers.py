"""R-17.2: subjects are keyed by a valid resident identity number or unified social credit code.

Expected check characters come from the standards' own examples or from the small independent
implementations below (the check equations as the standards state them, solved by search),
not from the code under test.
"""

from datetime import date

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ops.cli import main
from streams.rules.identifiers import (
    resident_id_check_char,
    resident_id_problem,
    subject_problem,
    uscc_check_char,
    uscc_problem,
)

TODAY = date(2025, 6, 1)

# ----------------------------------------------------------------------------- independent references


def gb11643_check(first17: str) -> str:
    """GB 11643: with W_i = 2^(i-1) mod 11 (i counted from the right, the check digit being i = 1),
    sum(a_i * W_i) mod 11 == 1; X stands for 10."""
    partial = sum(int(d) * pow(2, 17 - k, 11) for k, d in enumerate(first17))
    (check,) = [c for c in range(11) if (partial + c) % 11 == 1]
    return "X" if check == 10 else str(check)


USCC_VALUES = dict(zip("0123456789ABCDEFGHJKLMNPQRTUWXY", range(31), strict=True))
USCC_WEIGHTS_FROM_TABLE = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def gb32100_check(first17: str) -> str:
    """GB 32100: the check character C18 makes sum(C_i * W_i) + C18 a multiple of 31."""
    partial = sum(USCC_VALUES[c] * w for c, w in zip(first17, USCC_WEIGHTS_FROM_TABLE, strict=True))
    (check,) = [c for c, v in USCC_VALUES.items() if (partial + v) % 31 == 0]
    return check


@pytest.mark.rule("R-17.2")
def test_the_reference_weights_are_the_powers_of_3_mod_31():
    assert USCC_WEIGHTS_FROM_TABLE == [pow(3, i, 31) for i in range(17)]


# ----------------------------------------------------------------------------- resident identity number

GB11643_EXAMPLES = ["11010519491231002X", "440524188001010014"]


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("value", GB11643_EXAMPLES)
def test_the_examples_of_gb11643_are_valid(value):
    assert gb11643_check(value[:17]) == value[17]
    assert resident_id_check_char(value[:17]) == value[17]
    assert resident_id_problem(value, today=TODAY) is None
    assert subject_problem(value, today=TODAY) is None


@pytest.mark.rule("R-17.2")
@given(st.text("0123456789", min_size=17, max_size=17))
def test_the_resident_check_character_agrees_with_the_standards_equation(first17):
    assert resident_id_check_char(first17) == gb11643_check(first17)


@pytest.mark.parametrize("first17", ["1101051949123100a", "1_010519491231002", " 1010519491231002",
                                     "\uff11" * 17, "1101051949123100"])
def test_the_resident_check_character_is_computed_from_17_ascii_digits_only(first17):
    with pytest.raises(ValueError, match="17 digits 0-9"):
        resident_id_check_char(first17)


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("value, words", [
    ("110105194912310021", ["check digit is 1", "GB 11643 gives X"]),
    ("440524188001010015", ["check digit is 5", "GB 11643 gives 4"]),
    ("11010519491231002x", ["uppercase X"]),
    ("11010519491231002", ["18 characters", "has 17"]),
    ("11010519491231002X0", ["18 characters", "has 19"]),
    ("110105491231002", ["15-digit", "18-digit"]),
    ("11010519A91231002X", ["character 9 is 'A'", "digits"]),
    ("１10105194912310021", ["character 1 is '１'", "digits 0-9"]),  # a full-width digit
    ("11010519491231002Y", ["character 18", "'Y'", "digit 0-9 or X"]),
])
def test_malformed_resident_ids_are_refused_with_the_reason(value, words):
    problem = resident_id_problem(value, today=TODAY)
    assert problem is not None
    for w in words:
        assert w in problem


def _with_check(first17: str) -> str:
    return first17 + gb11643_check(first17)


@pytest.mark.rule("R-17.2")
def test_an_impossible_birth_date_is_refused_even_with_a_correct_check_digit():
    value = _with_check("11010519490230002")
    assert resident_id_problem(value, today=TODAY) == (
        f"{value!r}: characters 7-14 (the birth date) read 19490230, which is not a real date")


@pytest.mark.rule("R-17.2")
def test_a_birth_date_in_the_future_is_refused():
    value = _with_check("11010520250602002")
    assert "2025-06-02 (characters 7-14) is in the future" in resident_id_problem(value, today=TODAY)
    assert resident_id_problem(value, today=date(2025, 6, 2)) is None


@pytest.mark.rule("R-17.2")
def test_a_mistyped_century_is_refused():
    value = _with_check("11010510491231002")
    assert "1049-12-31" in resident_id_problem(value, today=TODAY)


@st.composite
def resident_ids(draw):
    region = draw(st.from_regex(r"[1-8][0-9]{5}", fullmatch=True))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    serial = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    return _with_check(f"{region}{born:%Y%m%d}{serial}")


@pytest.mark.rule("R-17.2")
@given(value=resident_ids(), pos=st.integers(0, 16), delta=st.integers(1, 9))
def test_every_single_digit_change_in_a_resident_id_is_detected(value, pos, delta):
    assert resident_id_problem(value, today=TODAY) is None
    changed = value[:pos] + str((int(value[pos]) + delta) % 10) + value[pos + 1:]
    assert resident_id_problem(changed, today=TODAY) is not None


@pytest.mark.rule("R-17.2")
@given(value=resident_ids(), check=st.sampled_from("0123456789X"))
def test_a_changed_resident_check_digit_is_detected(value, check):
    changed = value[:17] + check
    assert (resident_id_problem(changed, today=TODAY) is None) == (check == value[17])


# ----------------------------------------------------------------------------- unified social credit code

PUBLISHED_LOOKING_USCCS = ["91350100M000100Y43", "91110000802100433B"]


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("value", PUBLISHED_LOOKING_USCCS)
def test_real_looking_codes_are_valid(value):
    assert gb32100_check(value[:17]) == value[17]
    assert uscc_check_char(value[:17]) == value[17]
    assert uscc_problem(value) is None
    assert subject_problem(value) is None


@pytest.mark.rule("R-17.2")
def test_the_n_prefixed_example_from_the_brief_has_the_wrong_check_character():
    assert gb32100_check("N2110102MF0000000") == "D"
    assert uscc_problem("N2110102MF0000000X") == "'N2110102MF0000000X': check character is X, GB 32100 gives D"


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("first17", [
    "N2110102MF0000000",  # agriculture and rural affairs
    "N2350100MA0000001",
    "Y1110000MC0000001",  # "other" registration departments
    "Y2110000500000001",
    "12100000400000062",  # organisation establishment
    "51110000500000001",  # civil affairs
    "A1110000MB0000001",
    "H1110000MB0000001",
])
def test_codes_of_every_registration_department_are_accepted(first17):
    assert uscc_problem(first17 + gb32100_check(first17)) is None


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("value, words", [
    ("91350100m000100y43", ["letters must be uppercase", "character 9 is 'm'"]),
    ("91350100M000100y43", ["letters must be uppercase", "character 16 is 'y'"]),
    ("91350100M00010OY43", ["character 15 is 'O'", "never uses", "did you mean '0'"]),
    ("91350100MI00100Y43", ["character 10 is 'I'", "did you mean '1'"]),
    ("91350100M000100Z43", ["character 16 is 'Z'", "did you mean '2'"]),
    ("91350100M0001S0Y43", ["character 14 is 'S'", "did you mean '5'"]),
    ("91350100M000100V43", ["character 16 is 'V'", "did you mean 'U'"]),
    ("91350100M000-00Y43", ["character 13 is '-'", "only the digits"]),
    ("91350100M000100Y4", ["18 characters", "has 17"]),
    ("91350100M000100Y433", ["18 characters", "has 19"]),
    ("J1350100M000100Y43", ["character 1", "registration management department", "'J'", "1-9, A-H, N or Y"]),
    ("01350100M000100Y43", ["character 1", "'0'"]),
    ("913501A0M000100Y43", ["characters 3-8", "administrative division", "3501A0", "6 digits"]),
    ("91350100M000100Y4T", ["check character is T, GB 32100 gives 3"]),
])
def test_malformed_codes_are_refused_with_the_reason(value, words):
    problem = uscc_problem(value)
    assert problem is not None
    for w in words:
        assert w in problem


@pytest.mark.rule("R-17.2")
def test_the_wrong_check_character_reason_reads_for_an_officer():
    assert uscc_problem("91350100M000100Y4T") == "'91350100M000100Y4T': check character is T, GB 32100 gives 3"


CHARSET = "".join(USCC_VALUES)


@st.composite
def uscc_bodies(draw):
    """17 characters shaped like a code: a department, a category, 6 division digits, 9 code characters."""
    return (draw(st.sampled_from("123456789ABCDEFGHNY")) + draw(st.sampled_from(CHARSET))
            + draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
            + "".join(draw(st.lists(st.sampled_from(CHARSET), min_size=9, max_size=9))))


@pytest.mark.rule("R-17.2")
@given(first17=uscc_bodies())
def test_the_check_character_agrees_with_the_independent_reference(first17):
    assert uscc_check_char(first17) == gb32100_check(first17)
    assert uscc_problem(first17 + uscc_check_char(first17)) is None


@pytest.mark.rule("R-17.2")
@given(first17=uscc_bodies(), pos=st.integers(0, 17), replacement=st.sampled_from(CHARSET))
def test_every_single_character_change_in_a_code_is_detected(first17, pos, replacement):
    # the weights are nonzero mod the prime 31 and the 31 characters have distinct values,
    # so a single substitution always moves the weighted sum off a multiple of 31
    value = first17 + uscc_check_char(first17)
    changed = value[:pos] + replacement + value[pos + 1:]
    assert (uscc_problem(changed) is None) == (replacement == value[pos])


# ----------------------------------------------------------------------------- either kind


@pytest.mark.rule("R-17.2")
@pytest.mark.parametrize("value, starts", [
    ("110105194912310021", "taken as a resident identity number"),
    ("11010519491231002x", "taken as a resident identity number"),
    ("91350100M000100Y4T", "taken as a unified social credit code"),
    ("1101051949123100XX", "taken as a unified social credit code"),
])
def test_the_reason_names_the_kind_the_subject_was_taken_for(value, starts):
    assert subject_problem(value, today=TODAY).startswith(starts)


@pytest.mark.rule("R-17.2")
def test_a_subject_of_the_wrong_length_is_neither_kind():
    problem = subject_problem("11010519491231002")
    assert "has 17 characters" in problem
    assert "resident identity number and a unified social credit code both have 18" in problem


@pytest.mark.rule("R-17.2")
def test_an_all_digit_organisation_code_is_judged_by_shape_and_the_reason_says_what_it_could_be():
    value = "911100001011206307"
    assert gb32100_check(value[:17]) == value[17]
    assert uscc_problem(value) is None
    problem = subject_problem(value, today=TODAY)
    assert problem.startswith("taken as a resident identity number")
    assert "would be a valid unified social credit code" in problem


# ----------------------------------------------------------------------------- govbus check


@pytest.mark.rule("R-17.2")
def test_govbus_check_uscc():
    runner = CliRunner()
    ok = runner.invoke(main, ["check", "uscc", "91110000802100433B"])
    assert (ok.exit_code, ok.output) == (0, "valid\n")
    bad = runner.invoke(main, ["check", "uscc", "91110000802100433b"])
    assert bad.exit_code == 1
    assert "letters must be uppercase" in bad.output
