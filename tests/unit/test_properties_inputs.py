"""Property-based tests of the CLI's input parsers: random JSON, CSV, YAML and argument text.

Pure: no Kafka, no PostgreSQL, no subprocess. The click commands run in click's CliRunner with
the two places where the CLI meets the broker replaced by fakes (`ops.kafka_io.send_events` and
`send_and_wait`, and `ops.kafka_io.published_calendar`); the fakes encode every event with the real Avro
codec, as `send_events` does before it sends anything, so "the command accepted the input" also
means "what it would send can be encoded".

The crashes these properties found are kept as plain tests holding the minimal failing input, next to
the property that found them; the properties' domains include those inputs again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import string
import tempfile
import traceback
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from unittest import mock

import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ops.cli import main
from ops.cli.common import split_list
from ops.events import CONTENT_FIELDS
from ops.publish import RESERVED, Row, read_rows
from schemas.codec import default_codec
from schemas.errors import CodecError
from streams.rules.identifiers import (
    USCC_CHARSET,
    resident_id_check_char,
    resident_id_problem,
    uscc_check_char,
    uscc_problem,
)
from streams.rules.workcalendar import WorkCalendar, provisional_workday, publish_event, year_from_record

CODEC = default_codec()
RUNNER = CliRunner()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies

SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)
# text that can stand unescaped in a UTF-8 file (no lone surrogates), U+0085, U+2028 and U+2029 included: they
# are legal inside a JSON string, and JSON Lines end at \n only
RAW_SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
# data items hold no NUL character: no store of the bus can keep one, so the reader refuses it
SUBJECTS = st.text(max_size=20).filter(lambda s: s.strip())
TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=8))]))


def _expected_value(v):
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v


def valid_records(text: st.SearchStrategy[str], subjects: st.SearchStrategy[str] = SUBJECTS
                  ) -> st.SearchStrategy[tuple[dict, dict]]:
    """(object, the record read_rows must make of it) for a well-formed JSON record."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False) | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6)
    flat_keys = text.filter(lambda k: k not in RESERVED)

    @st.composite
    def records(draw):
        subject = draw(subjects)
        nested = draw(st.booleans())
        items = draw(st.dictionaries(text if nested else flat_keys, values, max_size=5))
        obj = {"subject_id": subject, **({"items": items} if nested else items)}
        expected = {"subject_id": subject.strip(), "items": {k: _expected_value(v) for k, v in items.items()}}
        event_id = draw(st.none() | text | st.integers())
        if event_id is not None or draw(st.booleans()):
            obj["event_id"] = event_id
        if event_id is not None:
            expected["event_id"] = str(event_id)
        when = draw(st.none() | TIMES)
        if when is not None:
            obj["occurred_at"] = when.isoformat()
            expected["occurred_at"] = when
        return obj, expected

    return records()


RECORDS = valid_records(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12))
RAW_SAFE_RECORDS = valid_records(RAW_SAFE_TEXT, RAW_SAFE_TEXT.filter(lambda s: s.strip()))


def _not_iso(s: str) -> bool:
    try:
        datetime.fromisoformat(s)
    except ValueError:
        return True
    return False


@st.composite
def invalid_records(draw):
    """(object, a word the problem must contain) for a JSON record that cannot be published."""
    obj, _ = draw(RECORDS)
    how = draw(st.sampled_from(["not an object", "no subject", "bad subject", "bad items", "unstorable", "bad time"]))
    if how == "not an object":
        return draw(SCALARS | st.lists(SCALARS, max_size=3)), "expected an object"
    if how == "no subject":
        del obj["subject_id"]
        return obj, "subject_id"
    if how == "bad subject":
        obj["subject_id"] = draw(st.sampled_from(["", " ", "\t\n", "\u3000"]) | st.integers() | st.none()
                                 | st.booleans() | st.lists(st.text(max_size=3), max_size=2))
        return obj, "subject_id"
    if how == "bad items":
        obj["items"] = draw(st.lists(SCALARS, max_size=2) | st.text(max_size=5) | st.integers() | st.none())
        return obj, "items must be an object"
    if how == "unstorable":
        obj["items"] = {draw(st.sampled_from(["姓名", "a\x00b"])): "张\x00三"}
        return obj, "NUL character"
    obj["occurred_at"] = draw(st.text(min_size=1, max_size=12).filter(_not_iso))
    return obj, "isoformat"


# --------------------------------------------------------------------------- read_rows: the checker


def check_rows(data: bytes, fmt: str) -> list[Row]:
    """read_rows never raises; every row is a publishable record or a problem a person can act on."""
    rows = list(read_rows(data, fmt))
    lines = [r.line for r in rows]
    assert lines == sorted(set(lines)), f"line numbers out of order or repeated: {lines}"
    for r in rows:
        assert isinstance(r, Row) and isinstance(r.raw, bytes) and r.line >= 1
        assert (r.record is None) != (r.problem is None), r
        if r.problem is not None:
            assert isinstance(r.problem, str) and r.problem.strip()
            # it says where: the line (CSV, JSON Lines, broken document) or element (JSON array)
            assert str(r.line) in r.problem or "header" in r.problem, r.problem
            continue
        rec = r.record
        assert set(rec) <= {"subject_id", "items", "event_id", "occurred_at"} and {"subject_id", "items"} <= set(rec)
        assert isinstance(rec["subject_id"], str) and rec["subject_id"] == rec["subject_id"].strip() != ""
        assert isinstance(rec["items"], dict) and all(isinstance(k, str) for k in rec["items"])
        assert all(v is None or isinstance(v, (str, int, float, bool)) for v in rec["items"].values())
        assert isinstance(rec.get("event_id", ""), str)
        assert isinstance(rec.get("occurred_at", datetime.now(UTC)), datetime)
        # publish_rows turns a CodecError into a reject; any other exception would stop the whole file
        try:
            CODEC.encode("govbus.exchange.DataDelivery", {
                "event_id": rec.get("event_id") or "e", "occurred_at": rec.get("occurred_at") or datetime.now(UTC),
                "publisher": "NJ-GA", "resource_code": "GA-RK-001", "subject_id": rec["subject_id"],
                "items": rec["items"], "system_code": None})
        except CodecError:
            pass
    return rows


def _csv_text(header: list[str], rows: Iterable[list[str]], terminator: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=terminator)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# --------------------------------------------------------------------------- read_rows: properties


@FAST
@given(data=st.binary(max_size=400), fmt=st.sampled_from(["json", "csv"]))
@example(data=b"\xef\xbb\xbf", fmt="csv")
@example(data=b"[", fmt="json")
@example(data=b'[{"subject_id": 1,', fmt="json")
def test_arbitrary_bytes_give_records_or_actionable_problems(data, fmt):
    check_rows(data, fmt)


@FAST
@given(text=st.lists(st.sampled_from([*'ab ,"\n\r\x0c{}[]:\t', "subject_id", "\u2028"]), max_size=40)
       .map("".join))
def test_arbitrary_csv_like_text_gives_records_or_actionable_problems(text):
    for fmt in ("csv", "json"):
        check_rows(text.encode(), fmt)
        check_rows(("subject_id,a\n" + text).encode(), fmt)


@FAST
@given(picked=st.lists(RECORDS | invalid_records() | JSON_VALUES.map(lambda v: (v, None)), max_size=8),
       blank_lines=st.lists(st.sampled_from(["", " ", "\t"]), max_size=3))
def test_arbitrary_json_values_in_an_array_and_in_json_lines(picked, blank_lines):
    """Each element gives one row: its record when it is a well-formed record (paired with the record
    it must give), a problem naming what is wrong when it is a broken one (paired with a word the problem
    must contain), either for any other JSON value; JSON Lines keep physical line numbers across blank lines."""
    docs = [obj for obj, _ in picked]

    rows = check_rows(json.dumps(docs, ensure_ascii=False).encode(), "json")
    assert len(rows) == len(docs) and [r.line for r in rows] == list(range(1, len(docs) + 1))
    for row, (_, want) in zip(rows, picked, strict=True):
        if isinstance(want, dict):
            assert row.record == want
        elif isinstance(want, str):
            assert row.record is None and want in row.problem and f"element {row.line}" in row.problem

    assume(not docs or not isinstance(docs[0], list))  # a first line "[..." is read as one JSON document
    physical, where = [], []
    for i, obj in enumerate(docs):
        if i % 2:
            physical.extend(blank_lines)
        physical.append(json.dumps(obj))
        where.append(len(physical))
    rows = check_rows(("\n".join(physical) + "\n").encode(), "json")
    assert [r.line for r in rows] == where
    for row, (_, want) in zip(rows, picked, strict=True):
        if isinstance(want, dict):
            assert row.record == want
        elif isinstance(want, str):
            assert row.record is None and want in row.problem and f"line {row.line}" in row.problem


@FAST
@given(records=st.lists(RAW_SAFE_RECORDS, max_size=6), ensure_ascii=st.booleans())
def test_valid_json_records_round_trip(records, ensure_ascii):
    objs = [obj for obj, _ in records]
    want = [rec for _, rec in records]
    array = check_rows(json.dumps(objs, ensure_ascii=ensure_ascii).encode(), "json")
    assert [r.record for r in array] == want
    lines = "".join(json.dumps(o, ensure_ascii=ensure_ascii) + "\n" for o in objs)
    got = check_rows(lines.encode(), "json")
    assert [r.record for r in got] == want and [r.line for r in got] == list(range(1, len(objs) + 1))


CSV_KEYS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\ufeff\r\x00"), min_size=1,
                   max_size=8).filter(lambda k: k == k.strip() and k not in RESERVED)


@FAST
@given(keys=st.lists(CSV_KEYS, unique=True, max_size=4), data=st.data(), position=st.integers(0, 4),
       terminator=st.sampled_from(["\r\n", "\n"]))
def test_valid_csv_rows_round_trip(keys, data, position, terminator):
    # a CR inside a value is only quoted by csv.writer when it is part of the line terminator
    values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)
    if terminator != "\r\n":
        values = values.filter(lambda v: "\r" not in v)
    header = list(keys)
    at = min(position, len(header))
    header.insert(at, "subject_id")
    subjects = data.draw(st.lists(SUBJECTS.filter(lambda s: "\r" not in s or terminator == "\r\n"), max_size=5))
    table = []
    for s in subjects:
        row = data.draw(st.lists(values, min_size=len(keys), max_size=len(keys)))
        row.insert(at, s)
        table.append(row)
    text = _csv_text(header, table, terminator)
    rows = check_rows(text.encode("utf-8"), "csv")
    assert [r.problem for r in rows] == [None] * len(table)
    for r, s, row in zip(rows, subjects, table, strict=True):
        cells = row[:at] + row[at + 1:]
        assert r.record == {"subject_id": s.strip(), "items": {k: v or None for k, v in zip(keys, cells, strict=True)}}


PLAIN = st.text(alphabet=string.ascii_letters + string.digits + " _-", max_size=6)


@FAST
@given(lines=st.lists(st.lists(PLAIN, min_size=1, max_size=4), max_size=8))
def test_a_broken_csv_row_names_its_line_and_carries_its_own_bytes(lines):
    header = ["subject_id", "a", "b"]
    text = "subject_id,a,b\n" + "".join(",".join(cells) + "\n" for cells in lines)
    rows = {r.line: r for r in check_rows(text.encode(), "csv")}
    for n, cells in enumerate(lines, 2):
        if cells == [""]:
            assert n not in rows  # a blank line is no row
            continue
        r = rows[n]
        assert r.raw == (",".join(cells) + "\n").encode()
        if len(cells) != len(header):
            assert r.problem == f"line {n} has {len(cells)} fields, the header has {len(header)}"
        elif cells[0].strip():
            assert r.record == {"subject_id": cells[0].strip(), "items": {"a": cells[1] or None, "b": cells[2] or None}}
        else:
            assert "no subject_id" in r.problem and f"line {n}" in r.problem


# Inputs that once crashed read_rows (the whole file failed): each is now a row of its own, with its problem.
@pytest.mark.parametrize("data, fmt, problems", [
    pytest.param(b'[{"subject_id": "\\ud800"}]', "json",
                 [(1, "element 1: subject_id holds the escape \\ud800, half of a character")],
                 id="json-array-lone-surrogate-escape"),
    pytest.param(b'[{"subject_id": "x", "a": ["\\udc00"]}, {"subject_id": "y"}]', "json",
                 [(1, "element 1: data item 'a' holds the escape \\udc00")], id="json-array-nested-lone-surrogate"),
    pytest.param(b"[" + b"1" * 4301 + b"]", "json",
                 [(1, "the JSON array at line 1 cannot be read: a number has more than 4300 digits")],
                 id="json-array-integer-over-4300-digits"),
    pytest.param(b"\n\n" + b"[" * 100_000, "json",
                 [(3, "the JSON array at line 3 cannot be read: arrays and objects are nested too deeply to read")],
                 id="json-array-deep-nesting"),
    pytest.param(b'{"subject_id": "x"}\n' + b'{"a":' * 100_000, "json",
                 [(2, "line 2 cannot be read as JSON: arrays and objects are nested too deeply to read")],
                 id="json-lines-deep-nesting"),
    pytest.param(b'{"subject_id": "x"}\n[' + b"1" * 4301 + b"]\n", "json",
                 [(2, "line 2 cannot be read as JSON: a number has more than 4300 digits")],
                 id="json-lines-integer-over-4300-digits"),
    pytest.param(b"subject_id,a\rx,1\r", "csv", [], id="csv-classic-mac-line-endings"),
    pytest.param(b"subject_id,a\nx," + b"y" * 131_073 + b"\nz,2\n", "csv",
                 [(2, "line 2: a cell of 131073 characters is longer than the 131072 a cell may hold")],
                 id="csv-field-over-131072-chars"),
    pytest.param(b'subject_id,a\nx,"' + b"y\n" * 70_000 + b"z,2\n", "csv",
                 [(2, "line 2: a cell of 140004 characters is longer than the 131072 a cell may hold; "
                      "it runs to line 70002: is a quote left open?")],
                 id="csv-quote-left-open"),
])
def test_inputs_that_crashed_the_reader_give_a_problem_row(data, fmt, problems):
    rows = check_rows(data, fmt)
    bad = [r for r in rows if r.problem]
    assert len(bad) == len(problems), bad
    for r, (line, start) in zip(bad, problems, strict=True):
        assert r.line == line and r.problem.startswith(start), r.problem
    assert all(r.record["subject_id"] in "xyz" for r in rows if r.record)


def test_a_lone_surrogate_escape_keeps_its_escape_in_the_rejected_bytes():
    (row,) = check_rows(b'[{"subject_id": "\\ud800"}]', "json")
    assert row.raw == b'{"subject_id": "\\ud800"}'


def test_classic_mac_line_endings_are_lines():
    rows = check_rows(b"subject_id,a\rx,1\ry,2,3\r", "csv")
    assert [(r.line, r.raw, r.record, r.problem) for r in rows] == [
        (2, b"x,1\r", {"subject_id": "x", "items": {"a": "1"}}, None),
        (3, b"y,2,3\r", None, "line 3 has 3 fields, the header has 2")]


def test_a_quoted_cell_over_several_lines_is_one_row_named_by_its_first_line():
    rows = check_rows(b'subject_id,a\nx,"p\nq"\ny\n', "csv")
    assert [(r.line, r.raw) for r in rows] == [(2, b'x,"p\nq"\n'), (4, b"y\n")]
    assert rows[0].record == {"subject_id": "x", "items": {"a": "p\nq"}} and rows[1].problem.startswith("line 4 ")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_json_lines_with_a_unicode_line_separator_inside_a_string_round_trip(separator):
    rows = check_rows(f'{{"subject_id": "x", "a": "p{separator}q"}}\r\n{{"subject_id": "y"}}\n'.encode(), "json")
    assert [(r.line, r.record) for r in rows] == [
        (1, {"subject_id": "x", "items": {"a": f"p{separator}q"}}), (2, {"subject_id": "y", "items": {}})]


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])
def test_a_broken_csv_row_carries_its_own_bytes_after_a_cell_with_a_form_feed_or_line_separator(separator):
    rows = check_rows(f"subject_id,a\nx,p{separator}q\ny\n".encode(), "csv")
    assert [(r.line, r.raw) for r in rows if r.problem] == [(3, b"y\n")]


# --------------------------------------------------------------------------- the CLI, with fakes for the broker


class FakeBus:
    """Stands in for ops.kafka_io: encodes what would be sent (as send_events does first) and answers."""

    def __init__(self, answer=lambda schema, rec: []):
        self.sent: list[tuple[str, dict]] = []
        self.answer = answer

    async def send_events(self, spec, events):
        for _key, schema, rec in events:
            CODEC.encode(schema, rec)  # a CodecError here is a traceback for the officer
            self.sent.append((schema, rec))

    async def send_and_wait(self, inbox, events, answers, answer_schema, concerns, done, wait):
        await self.send_events(inbox, events)
        return [a for _, schema, rec in events for a in self.answer(schema, rec)]


def _run_now(coro):
    """ops.cli.common.run without an event loop: the fakes never wait for anything."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("a command awaited real I/O in a pure test")


async def _builtin_calendar():
    return WorkCalendar()


def invoke(args: list[str], bus: FakeBus | None = None, input: str | None = None):
    bus = bus or FakeBus()
    with mock.patch("ops.cli.common.run", _run_now), mock.patch("ops.kafka_io.published_calendar", _builtin_calendar), \
            mock.patch("ops.kafka_io.send_events", bus.send_events), \
            mock.patch("ops.kafka_io.send_and_wait", bus.send_and_wait):
        result = RUNNER.invoke(main, args, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("traceback instead of an answer:\n"
                             + "".join(traceback.format_exception(*result.exc_info)))
    return result


def assert_clean_refusal(result) -> None:
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output[len("Error: "):].strip(), result.output


# --------------------------------------------------------------------------- govbus check id / check uscc


@st.composite
def resident_ids(draw):
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)))
    body = draw(st.sampled_from(["511002", "510100", "110101"])) + born.strftime("%Y%m%d") + draw(
        st.text("0123456789", min_size=3, max_size=3))
    return body + resident_id_check_char(body)


@st.composite
def usccs(draw):
    body = (draw(st.sampled_from("123456789ABCDEFGHNY")) + draw(st.sampled_from(USCC_CHARSET))
            + draw(st.text("0123456789", min_size=6, max_size=6)) + draw(st.text(USCC_CHARSET, min_size=9, max_size=9)))
    return body + uscc_check_char(body)


def _mutated(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def mutate(args):
        value, pos, char = args
        pos %= len(value)
        return value[:pos] + char + value[pos + 1:]

    return st.tuples(valid, st.integers(0, 17), st.characters()).map(mutate)


# (value, what the answer must be: True valid, False invalid, None whatever the rules say)
ID_VALUES = st.one_of(
    st.text(max_size=24).map(lambda v: (v, None)), resident_ids().map(lambda v: (v, True)),
    _mutated(resident_ids()).map(lambda v: (v, None)),
    resident_ids().filter(lambda v: v.endswith("X")).map(lambda v: (v.lower(), False)),
    resident_ids().map(lambda v: (v[:15], False)), resident_ids().map(lambda v: (v + "0", False)),
    usccs().filter(lambda v: not v[:17].isdigit()).map(lambda v: (v, False)))
USCC_VALUES = st.one_of(
    st.text(max_size=24).map(lambda v: (v, None)), usccs().map(lambda v: (v, True)),
    _mutated(usccs()).map(lambda v: (v, None)),
    usccs().filter(lambda v: any(c.isalpha() for c in v)).map(lambda v: (v.lower(), False)),
    usccs().map(lambda v: (v[:17], False)), resident_ids().filter(lambda v: v.endswith("X")).map(lambda v: (v, None)),
    st.tuples(usccs(), st.sampled_from("0JKLMPQRTUWX")).map(  # no registration department has these codes
        lambda t: (t[1] + t[0][1:17] + uscc_check_char(t[1] + t[0][1:17]), False)))


def check_identifier(command: str, value: str, known: bool | None, problem_of) -> None:
    result = invoke(["check", command, "--", value])
    problem = problem_of(value)
    if known is not None:
        assert (problem is None) == known, problem
    if problem is None:
        assert (result.exit_code, result.output) == (0, "valid\n")
    else:
        assert result.exit_code == 1 and result.output == problem + "\n" and problem.strip() and problem != "valid"


@FAST
@given(pair=ID_VALUES)
@example(pair=("\ud800", False))
@example(pair=("", False))
@pytest.mark.rule("R-17.2")
def test_check_id_answers_valid_or_a_reason(pair):
    check_identifier("id", *pair, resident_id_problem)


@FAST
@given(pair=USCC_VALUES)
@example(pair=("\ud800", False))
@example(pair=("", False))
@pytest.mark.rule("R-17.2")
def test_check_uscc_answers_valid_or_a_reason(pair):
    check_identifier("uscc", *pair, uscc_problem)


# --------------------------------------------------------------------------- govbus catalog submit

ENTRY_KEYS = (*CONTENT_FIELDS, "kind", "change_date", "change_reason")
OPTIONAL_TEXT = {"base_database", "share_conditions", "share_basis", "open_conditions", "open_basis"}
ITEM_KEYS = ("name", "type", "subject_id", "basic", "personal")
DATA_ITEMS = st.one_of(
    st.none(), st.text(max_size=3), st.just([]),
    st.lists(st.dictionaries(st.sampled_from(ITEM_KEYS) | st.text(max_size=3), SCALARS, max_size=5)
             | st.fixed_dictionaries({"name": SCALARS}, optional={k: SCALARS for k in ITEM_KEYS[1:]}) | SCALARS,
             max_size=4))


@st.composite
def entries(draw):
    e = {}
    for key in draw(st.lists(st.sampled_from(ENTRY_KEYS), unique=True, max_size=10)):
        e[key] = draw(DATA_ITEMS if key == "data_items" else st.none() | st.text(max_size=10)
                      if key == "change_reason" else JSON_VALUES)
    if draw(st.integers(0, 9)) == 0:
        e[draw(st.text(max_size=6))] = draw(SCALARS)
    return e


SUBMISSIONS = st.one_of(entries(), st.lists(entries() | SCALARS, max_size=3),
                        st.builds(lambda es, top: {"entries": es, **top}, st.lists(entries(), max_size=3),
                                  st.dictionaries(st.sampled_from(["kind", "change_date"]), SCALARS)),
                        JSON_VALUES)


def check_submit(text: str) -> None:
    bus = FakeBus()
    result = invoke(["catalog", "submit", "-", "--as", "NJ-GA", "--wait", "0"], bus, input=text)
    if result.exit_code != 0:
        assert_clean_refusal(result)
        assert bus.sent == []  # refused before anything is sent
        return
    raw = yaml.safe_load(text)
    given_ = raw.get("entries", [raw]) if isinstance(raw, dict) else raw
    top = raw if isinstance(raw, dict) else {}
    assert [s for s, _ in bus.sent] == ["govbus.catalog.CatalogSubmission"] * len(given_)
    assert result.output.count("submitted ") == len(given_)
    for e, (_, rec) in zip(given_, bus.sent, strict=True):
        # every field the officer wrote is carried (as text); nothing unknown was silently dropped
        assert set(e) <= set(ENTRY_KEYS)
        entry = rec["entry"]
        assert set(entry) == set(CONTENT_FIELDS) and rec["submitter"] == "NJ-GA"
        for f in CONTENT_FIELDS:
            v = e.get(f)
            if f == "data_items":
                assert [i["name"] for i in entry[f]] == [str(i["name"]) for i in v or []]
            elif f == "classified":
                assert entry[f] is bool(v)
            elif f == "provider":
                assert entry[f] == (str(v) if v is not None and str(v) else "NJ-GA")
            else:
                assert entry[f] == (str(v) if v is not None else None if f in OPTIONAL_TEXT else "")
        assert rec["kind"] == str(e.get("kind", top.get("kind", "new")))
        assert rec["change_reason"] == e.get("change_reason")


@FAST
@given(doc=SUBMISSIONS)
def test_catalog_submit_of_arbitrary_yaml_sends_what_was_written_or_refuses_cleanly(doc):
    check_submit(yaml.safe_dump(doc, allow_unicode=True))


@QUICK
@given(text=st.text(max_size=60)
       | st.lists(st.sampled_from([*":-[]{}\n ,#'\"", "data_items", "name", "x", "1"]), max_size=30).map("".join))
@example(text="")
@example(text="- 5")
@example(text="{}")
def test_catalog_submit_of_arbitrary_text_sends_or_refuses_cleanly(text):
    check_submit(text)


def refusal(args: list[str], text: str) -> str:
    """The message a command refuses a file with, having sent nothing."""
    bus = FakeBus()
    result = invoke([*args, "-", "--as", "NJ-GA", "--wait", "0"], bus, input=text)
    assert_clean_refusal(result)
    assert bus.sent == []
    return result.output.removeprefix("Error: ").strip()


@pytest.mark.parametrize("text, message", [
    pytest.param("1: x\n", "an entry: a field name is text, not the number 1", id="a-non-text-key"),
    pytest.param("entries: [{name: x}]\ntrue: 1\n", "the file: a field name is text, not true",
                 id="a-non-text-key-beside-entries"),
    pytest.param("data_items: 5\n", "data_items is a list, not the number 5", id="data-items-a-number"),
    pytest.param("data_items: [姓名]\n", "data item 1 is a mapping of fields (name, type, subject_id, basic, "
                 "personal, open_treatment), not '姓名'", id="data-item-a-name-only"),
    pytest.param("data_items: [{name: 姓名, personal: 'no'}]\n", "data item 1: personal is true or false, not 'no'",
                 id="data-item-flag-as-text"),
    pytest.param("classified: 'false'\n", "classified is true or false, not 'false'", id="classified-as-text"),
    pytest.param("name: [a, b]\n", "name is text, not a list", id="name-a-list"),
    pytest.param("resource_code: X\nchange_reason: 2024\n",
                 "change_reason is text, not the number 2024: write it in quotes", id="change-reason-a-number"),
    pytest.param("resource_code: X\nkind:\n", "kind (new or update) is missing", id="kind-empty"),
    pytest.param("resource_code: X\nchange_date: 2026-13-01\n", "standard input cannot be read: month must be in 1..12",
                 id="change-date-no-day"),
])
def test_catalog_files_that_crashed_submit_are_refused_naming_the_field(text, message):
    check_submit(text)
    assert refusal(["catalog", "submit"], text) == message


# --------------------------------------------------------------------------- govbus catalog demand / register-system

TEXT_OR_NONE = st.none() | st.text(max_size=8)
DEMANDS = st.lists(st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=8), "provider": TEXT_OR_NONE, "resource_code": TEXT_OR_NONE, "purpose": TEXT_OR_NONE,
    "basis": TEXT_OR_NONE, "data_items": st.none() | st.lists(st.text(max_size=5) | st.integers(), max_size=3)}),
    max_size=4)


def check_demand(text: str) -> None:
    bus = FakeBus()
    result = invoke(["catalog", "demand", "-", "--as", "NJ-YB", "--wait", "0"], bus, input=text)
    if result.exit_code != 0:
        assert_clean_refusal(result)
        return
    raw = yaml.safe_load(text)
    given_ = raw.get("demands", raw) if isinstance(raw, dict) else raw
    ((schema, rec),) = bus.sent
    assert schema == "govbus.catalog.DemandList" and rec["submitter"] == "NJ-YB"
    assert [i["name"] for i in rec["items"]] == [str(d.get("name", "")) for d in given_]
    assert [i["purpose"] for i in rec["items"]] == [str(d.get("purpose") or "") for d in given_]


@FAST
@given(demands=DEMANDS, wrapped=st.booleans())
def test_catalog_demand_of_a_list_of_demands_sends_them(demands, wrapped):
    check_demand(yaml.safe_dump({"demands": demands} if wrapped else demands, allow_unicode=True))


@FAST
@given(doc=JSON_VALUES)
@example(doc=None)
@example(doc={"name": "x"})
@example(doc=[{"name": "x", "provider": 5, "purpose": "p"}])
def test_catalog_demand_of_arbitrary_yaml_sends_or_refuses_cleanly(doc):
    check_demand(yaml.safe_dump(doc, allow_unicode=True))


@pytest.mark.parametrize("text, message", [
    pytest.param("", "a demand list is a list of demands (name, provider, resource_code, data_items, purpose, "
                 "basis), or demands: [...], not nothing", id="an-empty-file"),
    pytest.param("name: x\n", "a demand list is a list of demands (name, provider, resource_code, data_items, "
                 "purpose, basis), or demands: [...], not a mapping", id="one-demand-not-in-a-list"),
    pytest.param("- x\n", "demand 1 is a mapping of fields (name, provider, resource_code, data_items, purpose, "
                 "basis), not 'x'", id="a-list-of-names"),
    pytest.param("- {name: x, provider: [NJ-GA]}\n", "demand 1: provider is text, not a list", id="provider-a-list"),
    pytest.param("- {name: x, data_items: [a, null]}\n", "demand 1: data item 2 is missing",
                 id="a-data-item-null"),
    pytest.param("- {provider: NJ-GA}\n", "demand 1: name is missing", id="no-name"),
    pytest.param("demands: [{name: x, purpos: p}]\n", "unknown fields purpos in demand 1; it has name, provider, "
                 "resource_code, data_items, purpose, basis", id="a-misspelt-field"),
])
def test_catalog_demand_files_that_crashed_it_are_refused_naming_the_field(text, message):
    check_demand(text)
    assert refusal(["catalog", "demand"], text) == message


SYSTEMS = st.fixed_dictionaries(
    {"system_code": st.text(max_size=8), "name": st.text(max_size=8)},
    optional={"stage": st.text(max_size=8), "resource_codes": st.lists(st.text(max_size=5), max_size=3),
              "interfaces": st.lists(st.fixed_dictionaries(
                  {"name": st.text(max_size=5), "kind": st.text(max_size=5)},
                  optional={"resource_code": TEXT_OR_NONE}), max_size=3)})


def check_register_system(text: str) -> None:
    bus = FakeBus()
    result = invoke(["catalog", "register-system", "-", "--as", "NJ-GA", "--wait", "0"], bus, input=text)
    if result.exit_code != 0:
        assert_clean_refusal(result)
        return
    raw = yaml.safe_load(text)
    ((schema, rec),) = bus.sent
    assert schema == "govbus.catalog.SystemRegistration"
    assert (rec["system_code"], rec["name"], rec["stage"]) == (
        str(raw["system_code"]), str(raw["name"]), str(raw.get("stage", "registered")))
    assert [i["kind"] for i in rec["interfaces"]] == [str(i["kind"]) for i in raw.get("interfaces") or []]


@FAST
@given(doc=SYSTEMS)
def test_catalog_register_system_of_a_system_sends_it(doc):
    check_register_system(yaml.safe_dump(doc, allow_unicode=True))


@FAST
@given(doc=JSON_VALUES | SYSTEMS.map(lambda d: {**d, "interfaces": [{**i, "resource_code": 5} for i in d.get(
    "interfaces", [])]}))
@example(doc={"name": "x"})
@example(doc=None)
def test_catalog_register_system_of_arbitrary_yaml_sends_or_refuses_cleanly(doc):
    check_register_system(yaml.safe_dump(doc, allow_unicode=True))


@pytest.mark.parametrize("text, message", [
    pytest.param("name: x\n", "system_code is missing", id="no-system-code"),
    pytest.param("", "a system is a mapping of fields (system_code, name, stage, interfaces, resource_codes), "
                 "not nothing", id="an-empty-file"),
    pytest.param("system_code: S\nname: x\nstage:\n", "stage (registered or accepted) is missing",
                 id="stage-empty"),
    pytest.param("system_code: S\nname: x\ninterfaces: [{name: i}]\n", "interface 1: kind (share or open) is missing",
                 id="an-interface-without-kind"),
    pytest.param("system_code: S\nname: x\ninterfaces: [{name: i, kind: share, resource_code: [X]}]\n",
                 "interface 1: resource_code is text, not a list", id="an-interface-resource-code-a-list"),
    pytest.param("system_code: S\nname: x\ninterfaces: share\n", "interfaces is a list, not 'share'",
                 id="interfaces-text"),
])
def test_catalog_register_system_files_that_crashed_it_are_refused_naming_the_field(text, message):
    check_register_system(text)
    assert refusal(["catalog", "register-system"], text) == message


def test_a_number_where_the_schema_wants_text_is_sent_as_text():
    bus = FakeBus()
    invoke(["catalog", "register-system", "-", "--as", "NJ-GA", "--wait", "0"], bus,
           input="system_code: 2024\nname: x\ninterfaces: [{name: i, kind: share, resource_code: 5}]\n")
    invoke(["catalog", "demand", "-", "--as", "NJ-GA", "--wait", "0"], bus,
           input="- {name: x, provider: 5, resource_code: 6, basis: 2024-01-01, data_items: [1], purpose: p}\n")
    ((_, system), (_, demands)) = bus.sent
    assert (system["system_code"], system["interfaces"][0]["resource_code"]) == ("2024", "5")
    assert demands["items"] == [{"name": "x", "provider": "5", "resource_code": "6", "basis": "2024-01-01",
                                 "data_items": ["1"], "purpose": "p"}]


def test_what_the_checks_let_through_and_the_schema_refuses_is_an_error_not_a_traceback():
    from ops.cli.common import run
    from ops.kafka_io import send_events
    from topics.registry import CATALOG_INBOX

    bad = {"event_id": "e", "occurred_at": datetime.now(UTC), "submitter": "NJ-YB",
           "items": [{"name": "x", "provider": 5, "purpose": "p"}]}
    with pytest.raises(click.ClickException, match=r"^not sent: record does not match govbus.catalog.DemandList v1: "
                                                   r"govbus.catalog.Demand.provider is <5>"):
        run(send_events(CATALOG_INBOX, [(b"NJ-YB", "govbus.catalog.DemandList", bad)]))


# --------------------------------------------------------------------------- govbus share request


def _pending(schema: str, rec: dict) -> list[dict]:
    return [{"request_id": rec["event_id"], "resource_code": rec["resource_code"], "status": "pending",
             "grant_id": None, "rule_ids": ["R-26.1"], "reasons": ["awaiting the answer"]}]


@given(value=st.none() | st.text(max_size=30))
def test_comma_separated_lists_keep_every_named_value(value):
    got = split_list(value)
    assert all(v and v == v.strip() and "," not in v for v in got)
    assert got == [v.strip() for v in (value or "").split(",") if v.strip()]


def check_share_request(code: str, purpose: str, items: str, subjects: str | None, start: str | None,
                        until: str | None) -> None:
    bus = FakeBus(_pending)
    args = ["share", "request", "--as", "NJ-YB", f"--purpose={purpose}", f"--items={items}", "--wait", "0"]
    args += [f"--subjects={subjects}"] if subjects is not None else []
    args += [f"--from={start}"] if start is not None else []
    args += [f"--until={until}"] if until is not None else []
    result = invoke([*args, "--", code], bus)
    if result.exit_code != 0:
        assert_clean_refusal(result)
        return
    ((schema, rec),) = bus.sent
    assert schema == "govbus.sharing.ShareRequest"
    assert (rec["requester"], rec["resource_code"], rec["purpose"]) == ("NJ-YB", code, purpose)
    assert rec["items"] == split_list(items) and rec["subjects"] == split_list(subjects)
    first = start or date.today().isoformat()
    assert rec["valid_from"] == first
    assert rec["valid_until"] == (until or (date.fromisoformat(first) + timedelta(days=365)).isoformat())
    assert f"{rec['event_id']}  {code or '-'}  pending" in result.output


@FAST
@given(code=st.text(max_size=10), purpose=st.text(max_size=10), items=st.text(max_size=15),
       subjects=st.none() | st.text(max_size=15),
       start=st.none() | st.dates(max_value=date(9998, 1, 1)).map(date.isoformat),
       until=st.none() | st.text(max_size=12) | st.dates().map(date.isoformat))
@pytest.mark.rule("R-26.1")
def test_share_request_sends_the_purpose_and_items_as_given(code, purpose, items, subjects, start, until):
    check_share_request(code, purpose, items, subjects, start, until)


@pytest.mark.parametrize("start, until, message", [
    pytest.param("garbage", None, "--from 'garbage' is not a date of the form YYYY-MM-DD", id="not-a-date"),
    pytest.param("9999-12-31", None, "a validity of one year from 9999-12-31 ends after 9999-12-31: give --until",
                 id="validity-would-end-after-year-9999"),
    pytest.param("20260101", None, "--from '20260101' is not a date of the form YYYY-MM-DD", id="not-iso-extended"),
    pytest.param(None, "2026-02-30", "--until '2026-02-30' is not a date of the form YYYY-MM-DD", id="until-no-day"),
])
def test_share_request_with_a_bad_start_date_refuses_cleanly(start, until, message):
    check_share_request("WY-MZ-DB-001", "p", "姓名", None, start, until)
    bus = FakeBus(_pending)
    args = [f"--from={start}"] if start else []
    args += [f"--until={until}"] if until else []
    result = invoke(["share", "request", "--as", "NJ-YB", "--purpose=p", "--items=姓名", *args, "WY-MZ-DB-001"], bus)
    assert (result.exit_code, result.output, bus.sent) == (1, f"Error: {message}\n", [])


def test_share_request_from_the_last_day_with_an_until_is_sent():
    check_share_request("WY-MZ-DB-001", "p", "姓名", None, "9999-12-31", "9999-12-31")


# --------------------------------------------------------------------------- govbus calendar due / is-workday / publish


def check_calendar_due(received: str, days: str) -> None:
    result = invoke(["calendar", "due", "--", received, days])
    assert result.exit_code in (0, 2), result.output  # 2: click's usage error, with the reason
    if result.exit_code == 2:
        assert "Error: " in result.output
        return
    want = WorkCalendar().add_working_days(date.fromisoformat(received), int(days))
    assert result.output == f"{want}\n"


@FAST
@given(received=st.text(max_size=12) | st.dates(max_value=date(9990, 1, 1)).map(date.isoformat),
       days=st.text(st.characters(exclude_categories=("Cs", "Nd")), max_size=4) | st.integers(-3, 40).map(str))
@example(received="2026-09-30", days="10")
def test_calendar_due_answers_a_date_or_a_usage_error(received, days):
    check_calendar_due(received, days)


def test_calendar_due_at_the_end_of_time_refuses_cleanly():
    check_calendar_due("9999-12-31", "1")
    result = invoke(["calendar", "due", "9999-12-29", "3"])
    assert result.exit_code == 2 and result.output.endswith(
        "Error: counting 3 working days after 9999-12-29 goes beyond 9999-12-31, where the calendar ends\n")


@QUICK
@given(day=st.text(max_size=12) | st.dates().map(date.isoformat))
def test_calendar_is_workday_answers_or_gives_a_usage_error(day):
    result = invoke(["calendar", "is-workday", "--", day])
    if result.exit_code == 2:
        assert "is not a date of the form YYYY-MM-DD" in result.output
        return
    d = date.fromisoformat(day)
    work = WorkCalendar().is_workday(d)
    expected = ("workday" if provisional_workday(d) else "rest day") + " provisional" if work is None else (
        "workday" if work else "rest day")
    assert (result.exit_code, result.output) == (0, expected + "\n")


def _int32_or_not_an_int(v) -> bool:
    try:
        return -(2**31) <= int(v) < 2**31
    except (TypeError, ValueError, OverflowError):
        return True


DAYS = st.lists(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
                | st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat)
                | st.text(max_size=6) | st.integers(), max_size=4) | st.none() | st.text(max_size=4) | st.integers()
YEARS = (st.integers(-(2**31), 2**31 - 1) | st.integers(2020, 2030) | st.integers(2020, 2030).map(str)
         | st.floats(-(2.0**31), 2.0**31 - 1) | st.text(max_size=6).filter(_int32_or_not_an_int)
         | st.none() | st.lists(st.integers(), max_size=2))
CALENDAR_FILES = st.fixed_dictionaries({}, optional={
    "year": YEARS, "source": st.text(max_size=8) | st.integers() | st.none(), "holidays": DAYS, "workdays": DAYS,
}) | JSON_VALUES.filter(lambda v: not isinstance(v, dict))


def publish_calendar_file(text: str):
    """`govbus calendar publish` of a file holding `text`: the result, what was sent, and the file's path."""
    bus = FakeBus()
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        result = invoke(["calendar", "publish", path, "--as", "NJ-SJJ"], bus)
    finally:
        os.unlink(path)
    return result, bus.sent, path


def check_calendar_publish(text: str) -> None:
    result, sent_events, _ = publish_calendar_file(text)
    if result.exit_code != 0:
        assert_clean_refusal(result)
        assert sent_events == []
        return
    ((schema, rec),) = sent_events
    assert schema == "govbus.calendar.CalendarYear"
    # what the authority publishes must be readable by every reader of the calendar topic
    sent = year_from_record(CODEC.decode(CODEC.encode(schema, rec), schema).record)
    assert sent == year_from_record(yaml.safe_load(text))
    assert result.output.startswith(f"published the {sent.year} calendar")


@FAST
@given(doc=CALENDAR_FILES)
@example(doc={"year": 2027, "source": "国办发明电〔2026〕1号", "holidays": ["2027-01-01"], "workdays": []})
@example(doc={"year": 2027, "source": "x", "holidays": ["2027-01-01"], "workdays": ["2027-01-01"]})
def test_calendar_publish_sends_a_readable_year_or_refuses_cleanly(doc):
    check_calendar_publish(yaml.safe_dump(doc, allow_unicode=True))


def calendar_refusal(text: str) -> str:
    result, sent_events, path = publish_calendar_file(text)
    assert_clean_refusal(result)
    assert sent_events == []
    return result.output.removeprefix("Error: ").strip().replace(path, "FILE")


@pytest.mark.parametrize("text, message", [
    pytest.param("year: .inf\nsource: x\n", "FILE: year inf is not a year: give it as a number, e.g. 2027",
                 id="year-infinite"),
    pytest.param("year: 2027\nsource: x\nholidays: [2027-01-01 00:00:00]\n",
                 "FILE: holidays: 2027-01-01 00:00:00 has a time of day; give the date alone, YYYY-MM-DD",
                 id="holiday-with-a-time"),
    pytest.param("year: 2027\nsource: x\nworkdays: ['2027-01-01T00:00:00']\n",
                 "FILE: workdays: '2027-01-01T00:00:00' is not a date of the form YYYY-MM-DD",
                 id="workday-with-a-time-as-text"),
    pytest.param("year: 2027.5\nsource: x\n", "FILE: year 2027.5 is not a year: give it as a number, e.g. 2027",
                 id="year-a-fraction"),
    pytest.param("year: 2027\nsource: x\nholidays: 2027-01-01\n",
                 "FILE: holidays is a list of dates (YYYY-MM-DD), not 2027-01-01: write [2027-01-01] for one day",
                 id="holidays-one-date-not-a-list"),
    pytest.param("year: 2027\nsource:\n", "source (the notice the calendar comes from) is missing",
                 id="source-empty"),
    pytest.param("year: 2027\nsource: x\nholiday: [2027-01-01]\n",
                 "unknown fields holiday in a calendar file; it has year, source, holidays, workdays",
                 id="a-misspelt-field"),
    pytest.param("year: 2027\nsource: x\nholidays: [2027-02-30]\n", "FILE cannot be read: day is out of range "
                 "for month", id="a-date-that-is-no-day"),
    pytest.param("year: [2027\n", "FILE is neither YAML nor JSON", id="broken-yaml"),
    pytest.param("year: 2027\nsource: x\nholidays: [2027-02-06]\nworkdays: [2027-02-08]\n",
                 "FILE: holidays lists 2027-02-06, on a Saturday or Sunday; workdays lists 2027-02-08, a weekday: "
                 "holidays are the weekdays off, workdays the Saturdays and Sundays worked",
                 id="days-on-the-wrong-side"),
])
def test_calendar_files_that_crashed_or_poisoned_publish_are_refused(text, message):
    check_calendar_publish(text)
    assert calendar_refusal(text).startswith(message)


def test_an_unreadable_calendar_on_the_topic_is_logged_and_skipped(caplog):
    def event(**fields):
        return CODEC.encode("govbus.calendar.CalendarYear", {
            "event_id": "e", "occurred_at": datetime.now(UTC), "source": "s", "published_by": "NJ-SJJ",
            "holidays": [], "workdays": [], **fields})

    cal = WorkCalendar()
    assert not publish_event(cal, CODEC, event(year=2027, holidays=["2027-01-01T00:00:00"]))
    assert not publish_event(cal, CODEC, b"\xc3\x01 not avro")
    assert publish_event(cal, CODEC, event(year=2028, holidays=["2028-01-03"]))
    assert not cal.knows(2027) and cal.is_workday(date(2028, 1, 3)) is False
    assert "skipped the calendar of 2027 (event e): holidays: '2027-01-01T00:00:00' is not a date" in caplog.text


@pytest.mark.rule("R-14.1")
def test_the_calendar_is_published_by_the_authority_for_a_year_not_built_in():
    def publish(text: str, *args: str):
        bus = FakeBus()
        fd, path = tempfile.mkstemp(suffix=".yaml")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return invoke(["calendar", "publish", path, *args], bus), bus.sent
        finally:
            os.unlink(path)

    year_2027 = "year: 2027\nsource: x\nholidays: [2027-01-01]\n"
    result, sent = publish(year_2027, "--as", "NJ-GA")
    assert result.exit_code == 2 and "NJ-GA is not the city's authority" in result.output and sent == []
    result, sent = publish("year: 2026\nsource: x\nholidays: [2026-01-01]\n")
    assert result.exit_code == 1 and sent == [] and "2026 is a year the built-in calendar already holds" in \
        result.output and "--replace-built-in" in result.output
    result, sent = publish("year: 2026\nsource: x\nholidays: [2026-01-01]\n", "--replace-built-in")
    assert result.exit_code == 0 and [rec["year"] for _, rec in sent] == [2026]
    result, sent = publish(year_2027)
    assert result.exit_code == 0 and [rec["published_by"] for _, rec in sent] == ["NJ-SJJ"]
