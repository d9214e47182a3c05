"""`govbus publish`: read records from JSON, JSON Lines or CSV and publish them as Avro events.

Each record is about one subject: a `subject_id` field (or column), optionally an
`event_id` and `occurred_at`, and the data items (an `items` object, or every other
field). A row that cannot be read (broken CSV row, bad JSON line, no subject id) is not
silently dropped: it goes to the rejects topic with its line number and the reason, and
the rest of the file is still published.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from schemas.codec import default_codec
from schemas.errors import CodecError
from streams.rules.exchange import reject_record, unstorable
from streams.rules.refusals import Refusal
from topics.registry import REJECTS, name_of, publish_name
from topics.settings import all_delivered, delivered, kafka_options, start_client

RESERVED = {"subject_id", "event_id", "occurred_at", "items"}


@dataclass
class Row:
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    problem: str | None = None


# csv's own default field limit: a longer cell is refused, not published (often a quote left open)
MAX_CELL_CHARS = 131_072
# half of a UTF-16 surrogate pair, as a JSON escape like \ud800 alone reads: no character UTF-8 can hold
_SURROGATE = re.compile("[\ud800-\udfff]")


def _scalar(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _surrogate_problem(rec: dict[str, Any]) -> str | None:
    texts = [("subject_id", rec["subject_id"]), ("event_id", rec.get("event_id") or "")]
    for k, v in rec["items"].items():
        texts += [(f"the name of data item {k!r}", k), (f"data item {k!r}", v if isinstance(v, str) else "")]
    for where, text in texts:
        found = _SURROGATE.search(text)
        if found:
            return (f"{where} holds the escape {found[0].encode('unicode_escape').decode()}, half of a character "
                    "(an unpaired UTF-16 surrogate): correct the export that wrote it")
    return None


def _record(obj: Any, subject_item: str | None = None) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object with subject_id and data items, got {type(obj).__name__}")
    if subject_item and "subject_id" not in obj and subject_item in obj:  # the catalog's own name for it
        obj = {("subject_id" if k == subject_item else k): v for k, v in obj.items()}
    subject = obj.get("subject_id")
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError("no subject_id: every record names the resident or organisation it is about")
    if "items" in obj:
        if not isinstance(obj["items"], dict):
            raise ValueError("items must be an object of data item name -> value")
        items = obj["items"]
    else:
        items = {k: v for k, v in obj.items() if k not in RESERVED}
    rec: dict[str, Any] = {"subject_id": subject.strip(), "items": {str(k): _scalar(v) for k, v in items.items()}}
    if obj.get("event_id") is not None:
        rec["event_id"] = str(obj["event_id"])
    problem = _surrogate_problem(rec) or unstorable(rec["items"], "items")
    if problem is not None:
        raise ValueError(problem)
    if obj.get("occurred_at"):
        rec["occurred_at"] = datetime.fromisoformat(str(obj["occurred_at"]))
    return rec


def _row(line: int, raw: bytes, obj: Any, where: str, subject_item: str | None = None) -> Row:
    try:
        return Row(line, raw, record=_record(obj, subject_item))
    except ValueError as exc:
        return Row(line, raw, problem=f"{where}: {exc}")
    except RecursionError:
        return Row(line, raw, problem=f"{where}: a value nests arrays and objects too deeply")


class _NotJSON(ValueError):
    """Why json cannot read a text: a syntax error at (lineno, colno), or a limit of the reader (colno None)."""

    def __init__(self, reason: str, lineno: int | None = None, colno: int | None = None):
        super().__init__(reason)
        self.reason, self.lineno, self.colno = reason, lineno, colno


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _NotJSON(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise _NotJSON("arrays and objects are nested too deeply to read") from None
    except ValueError:  # the only other one: an integer longer than Python converts
        raise _NotJSON(f"a number has more than {sys.get_int_max_str_digits()} digits") from None


def _csv_records(text: str) -> list[tuple[int, bytes, list[str] | str]]:
    """(first line, own bytes, cells or why not) of each CSV record; lines end in \\n, \\r\\n or a bare \\r."""
    taken: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            taken.append(line)
            yield line

    reader = csv.reader(lines())
    records: list[tuple[int, bytes, list[str] | str]] = []
    first = 1
    # csv stops at its field limit mid-record, and would read the rest of a long quoted cell as new rows:
    # lift the limit while reading, so that each record ends where it ends, and refuse long cells one by one
    limit = csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    try:
        while True:
            try:
                cells: list[str] | str = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                cells = f"line {first} cannot be read as CSV: {exc}"
            longest = max(cells, key=len, default="") if isinstance(cells, list) else ""
            if len(longest) > MAX_CELL_CHARS:
                cells = (f"line {first}: a cell of {len(longest)} characters is longer than the {MAX_CELL_CHARS} "
                         "a cell may hold" + (f"; it runs to line {first + len(taken) - 1}: is a quote left open?"
                                              if len(taken) > 1 else ""))
            records.append((first, "".join(taken).encode(), cells))
            first += len(taken)
            taken.clear()
    finally:
        csv.field_size_limit(limit)
    return records


def read_rows(data: bytes, fmt: str, subject_item: str | None = None) -> Iterator[Row]:
    """Rows of a JSON array, JSON Lines or CSV document, each with its record or its problem; never raises. The
    subject is the `subject_id` column or field, or else the one named `subject_item` (the catalog's name of the
    resource's subject item, e.g. 公民身份号码), as departments' own exports name it."""
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        records = iter(_csv_records(text))
        line, raw, header = next(records, (0, b"", None))
        if header is None:
            return
        if isinstance(header, str):
            yield Row(line, raw, problem=f"the CSV header: {header}")
            return
        header = [h.strip() for h in header]
        if "subject_id" not in header and subject_item in header:
            header = ["subject_id" if h == subject_item else h for h in header]
        if "subject_id" not in header:
            named = f" (nor {subject_item}, the resource's subject item)" if subject_item else ""
            yield Row(line, raw, problem=f"the CSV header has no subject_id column{named}: its columns are "
                                         f"{', '.join(header[:8]) or 'none'}{' ...' if len(header) > 8 else ''}")
            return
        for line, raw, values in records:
            if isinstance(values, str):
                yield Row(line, raw, problem=values)
            elif not values or values == [""]:
                continue
            elif len(values) != len(header):
                yield Row(line, raw, problem=f"line {line} has {len(values)} fields, the header has {len(header)}")
            else:
                yield _row(line, raw, {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)},
                           f"line {line}", subject_item)
        return
    stripped = text.lstrip()
    if fmt == "json" and stripped.startswith("["):
        try:
            docs = _json(text)
        except _NotJSON as exc:
            if exc.colno is not None:
                yield Row(exc.lineno, data,
                          problem=f"not valid JSON: {exc.reason} at line {exc.lineno} column {exc.colno}")
            else:
                start = text.count("\n", 0, len(text) - len(stripped)) + 1
                yield Row(start, data, problem=f"the JSON array at line {start} cannot be read: {exc.reason}")
            return
        for i, obj in enumerate(docs, 1):
            # an element with a lone surrogate escape (\ud800) keeps it escaped in its bytes
            raw = json.dumps(obj, ensure_ascii=False).encode("utf-8", errors="backslashreplace")
            yield _row(i, raw, obj, f"element {i}", subject_item)
        return
    # JSON Lines end in \n (or \r\n); U+2028, U+0085 and the like may stand unescaped inside a JSON string
    for line, chunk in enumerate(text.split("\n"), 1):
        chunk = chunk.removesuffix("\r")
        if not chunk.strip():
            continue
        try:
            obj = _json(chunk)
        except _NotJSON as exc:
            problem = (f"line {line} is not valid JSON: {exc.reason} at column {exc.colno}" if exc.colno is not None
                       else f"line {line} cannot be read as JSON: {exc.reason}")
            yield Row(line, chunk.encode(), problem=problem)
            continue
        yield _row(line, chunk.encode(), obj, f"line {line}", subject_item)


def format_of(path: str) -> str:
    return "csv" if path.lower().endswith(".csv") else "json"


@dataclass
class PublishReport:
    published: int = 0
    rejected: int = 0
    rejects_recorded: bool = True  # False: the credentials may not write the rejects topic (a department's)


async def publish_rows(rows: list[Row], *, publisher: str, resource_code: str, source: str, bootstrap: str,
                       prefix: str = "", system_code: str | None = None, progress=None,
                       judge: Callable[[dict], Refusal | None] | None = None) -> PublishReport:
    """Send the rows' records on the publisher's inbound topic; a row that cannot be read, or whose record `judge`
    (the bus's own checks, when given) refuses, is not sent: it is counted, described in `row.problem`, and put on
    the rejects topic when the credentials may write it."""
    codec = default_codec()
    report = PublishReport()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kafka_options(), acks="all", enable_idempotence=True,
                                linger_ms=5, compression_type=None)
    await start_client(producer)
    # the department's own inbound topic, which the broker lets only it (and the bus's admin) write: the bus
    # knows the publisher from where it reads the record
    deliveries, rejects = publish_name(publisher, prefix), name_of(REJECTS, prefix)
    run = uuid.uuid4().hex[:8]  # two publications of files with one name never share reject ids
    published, recorded = [], []  # the broker's answers to come, for the publications and the rejects
    try:
        for row in rows:
            now = datetime.now(UTC)
            problem, code = row.problem, "broken_row"
            if row.record is not None:
                rec = {
                    "event_id": row.record.get("event_id") or uuid.uuid4().hex,
                    "occurred_at": row.record.get("occurred_at") or now,
                    "publisher": publisher,
                    "resource_code": resource_code,
                    "subject_id": row.record["subject_id"],
                    "items": row.record["items"],
                    "system_code": system_code,
                }
                refusal = judge(rec) if judge is not None else None
                if refusal is not None:  # what the bus would refuse is not sent
                    problem, code = f"line {row.line}: {refusal.reason}", refusal.code
                else:
                    try:
                        value = codec.encode("govbus.exchange.DataDelivery", rec)
                    except CodecError as exc:
                        problem = f"line {row.line}: {exc.reason}"
                    else:
                        published.append(await producer.send(deliveries, key=rec["subject_id"].encode(),
                                                             value=value))
                row.problem = problem
            if problem is not None:
                rej = reject_record(source_topic=f"file:{source}#{run}", partition=-1, offset=row.line, raw=row.raw,
                                    code=code, reason=problem, now=now, publisher=publisher)
                if report.rejects_recorded:
                    try:
                        recorded.append(await producer.send(rejects, key=rej["reject_id"].encode(),
                                                            value=codec.encode("govbus.ops.Reject", rej)))
                    except TopicAuthorizationFailedError:
                        report.rejects_recorded = False
                report.rejected += 1
            if progress is not None:
                progress.update(1)
        # counted once the broker has them: a record it refused is no publication
        await all_delivered(published)
        report.published = len(published)
        for error in await delivered(recorded):
            if isinstance(error, TopicAuthorizationFailedError):
                report.rejects_recorded = False  # a department's credentials: the rows are listed to it only
            elif error is not None:
                raise error
    finally:
        await producer.stop()
    return report


def load(path: str) -> tuple[bytes, str, str]:
    """(bytes, format, source name) of a path or '-' for standard input (JSON)."""
    import sys

    if path == "-":
        return sys.stdin.buffer.read(), "json", "stdin"
    p = Path(path)
    return p.read_bytes(), format_of(path), p.name
