"""A compiled Avro binary reader for the shapes govbus schemas use: the values fastavro's schemaless_reader gives,
read faster (a publication in about half the time).

`compile_reader(schema)` gives `read(data, start) -> (record, end)`: one straight-line function per record, the
strings and longs read in place. It reads a writer's own schema (no resolution to another version) and only what it
is sure of; whatever it cannot read raises, and the codec then asks fastavro, which decides and explains
(schemas.codec). tests/unit/test_fastread.py holds the two equal on generated records and on damaged bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.fastpath import Shapes, compile_shape

Reader = Callable[[bytes, int], tuple[Any, int]]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


class Damaged(ValueError):
    """The bytes are not what the schema says: fastavro is asked instead, and says what is wrong."""


def _long(b: bytes, i: int) -> tuple[int, int]:
    """A zig-zag varint at `i`: its value and the position after it."""
    x = b[i]
    i += 1
    z = x & 0x7F
    shift = 7
    while x & 0x80:
        x = b[i]
        i += 1
        z |= (x & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise Damaged("a varint longer than a long")
    if z >> 64:
        raise Damaged("a varint past 64 bits")
    return (z >> 1) ^ -(z & 1), i


def _bytes(b: bytes, i: int) -> tuple[bytes, int]:
    n, i = _long(b, i)
    j = i + n
    v = b[i:j]
    if n < 0 or len(v) != n:
        raise Damaged("a length past the end")
    return v, j


def _string(b: bytes, i: int) -> tuple[str, int]:
    v, j = _bytes(b, i)
    return v.decode(), j


def _null(b: bytes, i: int) -> tuple[None, int]:
    return None, i


def _boolean(b: bytes, i: int) -> tuple[bool, int]:
    x = b[i]
    if x > 1:
        raise Damaged("a boolean that is neither 0 nor 1")
    return x == 1, i + 1


def _double(b: bytes, i: int) -> tuple[float, int]:
    return _DOUBLE(b, i)[0], i + 8


def _float(b: bytes, i: int) -> tuple[float, int]:
    return _FLOAT(b, i)[0], i + 4


def _timestamp_millis(b: bytes, i: int) -> tuple[datetime, int]:
    n, i = _long(b, i)
    return EPOCH + timedelta(microseconds=n * 1000), i  # as fastavro's read_timestamp_millis


PRIMITIVES: dict[str, Reader] = {
    "null": _null, "boolean": _boolean, "int": _long, "long": _long, "float": _float, "double": _double,
    "bytes": _bytes, "string": _string,
}

# a varint read in place: most lengths and small numbers are one byte
_INLINE_LONG = ["x = b[i]", "if x < 0x80:", "    n = (x >> 1) ^ -(x & 1)", "    i += 1", "else:",
                "    n, i = _long(b, i)"]
_INLINE_STRING = [*_INLINE_LONG, "j = i + n", "s = b[i:j]", "if n < 0 or len(s) != n:",
                  "    raise Damaged('a length past the end')", "v = s.decode()", "i = j"]


def compile_reader(schema: Any) -> Reader:
    """`read(data, start) -> (value, end)` for a parsed schema; Unsupported for a shape it does not read."""
    return compile_shape(schema, READING)


def _union(branches: list) -> Reader:
    readers = [compile_reader(b) for b in branches]

    def read(b: bytes, i: int) -> tuple[Any, int]:
        x = b[i]
        if x < 0x80:
            n = (x >> 1) ^ -(x & 1)
            i += 1
        else:
            n, i = _long(b, i)
        if not 0 <= n < len(readers):
            raise Damaged("a union branch the schema does not have")
        return readers[n](b, i)

    return read


def _blocks(values: Reader, *, keyed: bool) -> Reader:
    """A map (keyed) or an array: blocks of a count and that many entries, a count of 0 at the end; a negative
    count is followed by the block's size in bytes."""
    lines = ["def read(b, i):", "    out = {} if keyed else []", "    while True:",
             *("        " + line for line in _INLINE_LONG),
             "        if n == 0:", "            return out, i", "        if n < 0:", "            n = -n",
             "            _, i = _long(b, i)", "        for _ in range(n):"]
    if keyed:
        lines += [*("            " + line for line in _INLINE_STRING), "            k = v",
                  "            out[k], i = values(b, i)"]
    else:
        lines += ["            v, i = values(b, i)", "            out.append(v)"]
    env = {"_long": _long, "Damaged": Damaged, "values": values, "keyed": keyed}
    exec(compile("\n".join(lines), "<avro blocks>", "exec"), env)  # noqa: S102
    return env["read"]


def _record(schema: dict) -> Reader:
    """Straight-line code over the fields: strings and longs in place, anything else by its compiled reader."""
    env: dict[str, Any] = {"_long": _long, "Damaged": Damaged}
    lines = ["def read(b, i):"]
    names = []
    for k, f in enumerate(schema["fields"]):
        r = compile_reader(f["type"])
        if r is _string:
            lines += ["    " + line for line in _INLINE_STRING]
        elif r is _long:
            lines += [*("    " + line for line in _INLINE_LONG), "    v = n"]
        else:
            env[f"r{k}"] = r
            lines.append(f"    v, i = r{k}(b, i)")
        lines.append(f"    f{k} = v")
        names.append(f"{f['name']!r}: f{k}")
    lines.append(f"    return {{{', '.join(names)}}}, i")
    exec(compile("\n".join(lines), f"<avro reader {schema.get('name', 'record')}>", "exec"), env)  # noqa: S102
    return env["read"]


READING = Shapes(PRIMITIVES, _union, _timestamp_millis, _record, lambda values: _blocks(values, keyed=True),
                 lambda items: _blocks(items, keyed=False))
