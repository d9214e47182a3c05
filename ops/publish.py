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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.codec import default_codec
from schemas.errors import CodecError
from streams.exchange import reject_record
from topics.registry import DELIVERIES, REJECTS, name_of

RESERVED = {"subject_id", "event_id", "occurred_at", "items"}


@dataclass
class Row:
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    problem: str | None = None


def _scalar(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _record(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object with subject_id and data items, got {type(obj).__name__}")
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
    if obj.get("occurred_at"):
        rec["occurred_at"] = datetime.fromisoformat(str(obj["occurred_at"]))
    return rec


def read_rows(data: bytes, fmt: str) -> Iterator[Row]:
    """Rows of a JSON array, JSON Lines or CSV document, each with its record or its problem."""
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        lines = text.splitlines(keepends=True)
        reader = csv.reader(io.StringIO(text))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        if "subject_id" not in header:
            yield Row(1, lines[0].encode() if lines else b"", problem="the CSV header has no subject_id column")
            return
        for values in reader:
            line = reader.line_num
            raw = lines[line - 1].encode() if line - 1 < len(lines) else b""
            if not values or values == [""]:
                continue
            if len(values) != len(header):
                yield Row(line, raw, problem=f"line {line} has {len(values)} fields, the header has {len(header)}")
                continue
            obj = {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)}
            try:
                yield Row(line, raw, record=_record(obj))
            except ValueError as exc:
                yield Row(line, raw, problem=f"line {line}: {exc}")
        return
    stripped = text.lstrip()
    if fmt == "json" and stripped.startswith("["):
        try:
            docs = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Row(exc.lineno, data, problem=f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
            return
        for i, obj in enumerate(docs, 1):
            raw = json.dumps(obj, ensure_ascii=False).encode()
            try:
                yield Row(i, raw, record=_record(obj))
            except ValueError as exc:
                yield Row(i, raw, problem=f"element {i}: {exc}")
        return
    for line, chunk in enumerate(text.splitlines(), 1):
        if not chunk.strip():
            continue
        try:
            yield Row(line, chunk.encode(), record=_record(json.loads(chunk)))
        except json.JSONDecodeError as exc:
            yield Row(line, chunk.encode(), problem=f"line {line} is not valid JSON: {exc.msg}")
        except ValueError as exc:
            yield Row(line, chunk.encode(), problem=f"line {line}: {exc}")


def format_of(path: str) -> str:
    return "csv" if path.lower().endswith(".csv") else "json"


@dataclass
class PublishReport:
    published: int = 0
    rejected: int = 0


async def publish_rows(rows: list[Row], *, publisher: str, resource_code: str, source: str, bootstrap: str,
                       prefix: str = "", system_code: str | None = None, progress=None) -> PublishReport:
    codec = default_codec()
    report = PublishReport()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5, compression_type=None)
    await producer.start()
    deliveries, rejects = name_of(DELIVERIES, prefix), name_of(REJECTS, prefix)
    run = uuid.uuid4().hex[:8]  # two publications of files with one name never share reject ids
    try:
        for row in rows:
            now = datetime.now(UTC)
            problem = row.problem
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
                try:
                    value = codec.encode("govbus.exchange.DataDelivery", rec)
                except CodecError as exc:
                    problem = f"line {row.line}: {exc.reason}"
                else:
                    await producer.send(deliveries, key=rec["subject_id"].encode(), value=value)
                    report.published += 1
            if problem is not None:
                rej = reject_record(source_topic=f"file:{source}#{run}", partition=-1, offset=row.line, raw=row.raw,
                                    code="broken_row", reason=problem, now=now, publisher=publisher)
                await producer.send(rejects, key=rej["reject_id"].encode(),
                                    value=codec.encode("govbus.ops.Reject", rej))
                report.rejected += 1
            if progress is not None:
                progress.update(1)
        await producer.flush()
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
