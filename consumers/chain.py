"""The ledger's hash chain (R-39.1, R-28.1), as pure functions: each row of a record table commits to the hash
of the row before it, so a changed, removed or inserted row breaks the chain from that row on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

GENESIS = bytes(32)  # the "previous hash" of a table's first row
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ChainedTable:
    """A ledger record table: the columns its rows' hashes cover, in order, and its unique key."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    times: tuple[str, ...] = ()  # timestamptz columns
    binary: tuple[str, ...] = ()  # bytea columns

    def select(self) -> str:
        """The columns as a verifier reads them: timestamps already as their canonical microseconds since the
        epoch, bytes as hex, so the walk does in the database what it would do in Python, row by row."""
        def expr(c: str) -> str:
            if c in self.times:
                return f"(extract(epoch FROM {c}) * 1000000)::bigint AS {c}"
            return f"encode({c}, 'hex') AS {c}" if c in self.binary else c
        return ", ".join(map(expr, self.columns))


CHAINED = {t.name: t for t in (
    ChainedTable("ledger_deliveries", ("event_id",),
                 ("event_id", "publisher", "resource_code", "subject_id", "system_code", "items", "occurred_at",
                  "accepted_at"), times=("occurred_at", "accepted_at")),
    ChainedTable("ledger_feed_deliveries", ("event_id", "subscriber"),
                 ("event_id", "subscriber", "publisher", "resource_code", "subject_id", "grant_id", "purpose",
                  "digest", "delivered_at", "items"), times=("delivered_at",)),
    ChainedTable("ledger_rejects", ("reject_id",),
                 ("reject_id", "source_topic", "source_partition", "source_offset", "code", "reason", "publisher",
                  "original_event_id", "rule_ids", "raw", "rejected_at"), times=("rejected_at",), binary=("raw",)),
)}


def _number(x: int | float) -> list[str]:
    # as PostgreSQL's jsonb gives it back: 1e+20 returns as 100000000000000000000, -0.0 as 0.0
    d = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    return ["n", "0" if d == 0 else str(d.normalize())]


def _item(v):
    if v is None or v is True or v is False or type(v) is str:
        return v
    if type(v) in (int, float):
        return _number(v)
    raise TypeError(f"a data item of type {type(v).__name__} has no canonical form")


def _time(v: datetime) -> int:
    if v.tzinfo is None:
        raise ValueError("a naive timestamp has no canonical form")
    return (v - EPOCH) // MICROSECOND


def _same(v):
    return v


_CANONICAL = {
    str: _same, int: _same, bool: _same, type(None): _same, datetime: _time,
    bytes: bytes.hex, bytearray: bytes.hex, memoryview: lambda v: bytes(v).hex(),
    dict: lambda v: [[k, _item(v[k])] for k in sorted(v)],  # data items (jsonb)
    list: lambda v: [canonical(x) for x in v], tuple: lambda v: [canonical(x) for x in v],
}


def canonical(v):
    """A column value as the chain hashes it: the same for the value the ledger wrote and the one it reads back."""
    try:
        return _CANONICAL[type(v)](v)
    except KeyError:
        raise TypeError(f"a value of type {type(v).__name__} has no canonical form") from None


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def link(prev: bytes, table: str, seq: int, values: Sequence) -> bytes:
    """The hash of row `seq` of `table`: SHA-256 over the previous row's hash and the row's canonical JSON."""
    body = _dumps([table, seq, [_CANONICAL[type(v)](v) if type(v) in _CANONICAL else canonical(v)
                                for v in values]])
    return hashlib.sha256(prev + body.encode()).digest()


def extend(prev: bytes, table: str, first_seq: int, rows: Iterable[Sequence]) -> list[bytes]:
    """The hashes of `rows` appended after a row whose hash is `prev`, numbered from `first_seq`."""
    out = []
    for seq, values in enumerate(rows, first_seq):
        prev = link(prev, table, seq, values)
        out.append(prev)
    return out


@dataclass(frozen=True)
class Break:
    """The first row at which a table's chain does not hold, and how."""

    table: str
    seq: int
    key: tuple
    problem: str

    def describe(self) -> str:
        return f"{self.table} row {self.seq} ({', '.join(map(str, self.key)) or 'no key'}): {self.problem}"


def first_break(table: ChainedTable, rows: Iterable[tuple[int, bytes | None, Sequence]], prev: bytes,
                expected_seq: int) -> tuple[Break | None, int, bytes]:
    """Walk `rows` (seq, stored hash, values in the table's column order), in sequence order, from the row numbered
    `expected_seq` after a row whose hash is `prev`: the first break, if any, and the last good (seq, hash)."""
    keyed = [table.columns.index(k) for k in table.key]
    last = expected_seq - 1
    for seq, stored, values in rows:
        key = tuple(values[i] for i in keyed)
        if seq != last + 1:
            return Break(table.name, seq, key, f"rows {last + 1}..{seq - 1} are missing before it"), last, prev
        if stored is None:
            return Break(table.name, seq, key, "carries no hash (never sealed)"), last, prev
        h = link(prev, table.name, seq, values)
        if h != bytes(stored):
            return Break(table.name, seq, key, "its content or hash was changed after it was written"), last, prev
        last, prev = seq, h
    return None, last, prev
