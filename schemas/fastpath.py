"""A compiled Avro binary writer for the shapes govbus schemas use: the same bytes as fastavro, written faster."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Writer = Callable[[list, Any], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SMALL = [bytes((n << 1,)) for n in range(64)]  # zigzag of 0..63 is one byte
_DOUBLE = struct.Struct("<d").pack


class Unsupported(Exception):
    """The schema uses something this writer does not compile."""


def zigzag(n: int) -> bytes:
    if 0 <= n < 64:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _w_null(out: list, v: Any) -> None:
    if v is not None:
        raise TypeError("expected null")


def _w_boolean(out: list, v: Any) -> None:
    if v is True:
        out.append(b"\x01")
    elif v is False:
        out.append(b"\x00")
    else:
        raise TypeError("expected boolean")


def _w_long(out: list, v: Any) -> None:
    if type(v) is not int:
        raise TypeError("expected int")
    out.append(zigzag(v))


def _w_double(out: list, v: Any) -> None:
    if type(v) not in (float, int):
        raise TypeError("expected number")
    out.append(_DOUBLE(v))


def _w_string(out: list, v: Any) -> None:
    b = v.encode()  # AttributeError for non-str: the codec falls back and explains
    n = len(b)
    out.append(_SMALL[n] if n < 64 else zigzag(n))
    out.append(b)


def _w_bytes(out: list, v: Any) -> None:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes")
    out.append(zigzag(len(v)))
    out.append(bytes(v))


_recent_times: dict[int, tuple[datetime, bytes]] = {}  # id -> (the datetime, its encoding); kept alive here


def _w_timestamp_millis(out: list, v: Any) -> None:
    if type(v) is int:
        out.append(zigzag(v))
        return
    hit = _recent_times.get(id(v))
    if hit is not None and hit[0] is v:  # the records of one fan-out share their datetimes
        out.append(hit[1])
        return
    if v.tzinfo is None:
        raise Unsupported("naive datetime")  # fastavro's own rules apply then
    d = v - EPOCH
    encoded = zigzag((d.days * 86400 + d.seconds) * 1000 + int(d.microseconds / 1000))
    if len(_recent_times) >= 8:
        _recent_times.clear()
    _recent_times[id(v)] = (v, encoded)
    out.append(encoded)


PRIMITIVES: dict[str, Writer] = {
    "null": _w_null, "boolean": _w_boolean, "int": _w_long, "long": _w_long, "double": _w_double,
    "string": _w_string, "bytes": _w_bytes,
}
# the Python type of a value -> the union branch names it may take, in order of preference
_BRANCHES = {type(None): ("null",), bool: ("boolean",), int: ("long", "int", "double"), float: ("double",),
             str: ("string",), bytes: ("bytes",)}


def compile_writer(schema: Any) -> Writer:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return PRIMITIVES[schema]
        raise Unsupported(f"named reference {schema}")
    if isinstance(schema, list):
        return _union(schema)
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis" and kind == "long":
        return _w_timestamp_millis
    if schema.get("logicalType"):
        raise Unsupported(schema["logicalType"])
    if kind in PRIMITIVES:
        return PRIMITIVES[kind]
    if kind == "record":
        return _record(schema)
    if kind == "map":
        return _map(compile_writer(schema["values"]))
    if kind == "array":
        return _array(compile_writer(schema["items"]))
    raise Unsupported(kind)


def _inline_string(indent: str) -> list[str]:
    """Source lines that write the string `x` as _w_string does, without the call."""
    return [f"{indent}b = x.encode()", f"{indent}n = len(b)", f"{indent}append(SMALL[n] if n < 64 else zigzag(n))",
            f"{indent}append(b)"]


def _record(schema: dict) -> Writer:
    """A straight-line function for the record, strings written in place: no loop over fields, no
    call per string field."""
    env: dict[str, Any] = {"SMALL": _SMALL, "zigzag": zigzag, "MISSING": object()}
    lines = ["def write(out, v):", "    append = out.append", "    get = v.get"]
    for i, f in enumerate(schema["fields"]):
        w = compile_writer(f["type"])
        if "default" in f:
            env[f"d{i}"] = f["default"]
            lines += [f"    x = get({f['name']!r}, MISSING)", "    if x is MISSING:", f"        x = d{i}"]
        else:
            lines.append(f"    x = v[{f['name']!r}]")  # KeyError: the codec falls back and explains
        if w is _w_string:
            lines += _inline_string("    ")
        else:
            env[f"w{i}"] = w
            lines.append(f"    w{i}(out, x)")
    exec(compile("\n".join(lines), f"<avro writer {schema.get('name', 'record')}>", "exec"), env)  # noqa: S102
    return env["write"]


def _union(branches: list) -> Writer:
    names = [b if isinstance(b, str) else b.get("type") for b in branches]
    if any(isinstance(b, dict) and (b.get("logicalType") or b["type"] not in PRIMITIVES) for b in branches):
        raise Unsupported("union of complex types")
    by_type = {}
    for py, candidates in _BRANCHES.items():
        for c in candidates:
            if c in names:
                i = names.index(c)
                by_type[py] = (zigzag(i), PRIMITIVES[c])
                break

    def write(out: list, v: Any) -> None:
        index, w = by_type[type(v)]  # KeyError: no branch for this type
        out.append(index)
        w(out, v)

    return write


def _map(values: Writer) -> Writer:
    def write(out: list, v: Any) -> None:
        if v:
            out.append(zigzag(len(v)))
            append = out.append
            for k, x in v.items():
                b = k.encode()
                n = len(b)
                append(_SMALL[n] if n < 64 else zigzag(n))
                append(b)
                values(out, x)
        out.append(b"\x00")

    return write


def _array(items: Writer) -> Writer:
    def write(out: list, v: Any) -> None:
        if v:
            out.append(zigzag(len(v)))
            for x in v:
                items(out, x)
        out.append(b"\x00")

    return write


def compile_template(schema: dict, varying: frozenset[str]) -> Callable[[bytes, dict], Callable[[dict], bytes]]:
    """For many records that differ only in the `varying` fields (one publication fanned out to its
    feeds): `prepare(header, common)` encodes every other field of `common` once, and the function it
    returns writes a record from its varying values alone (straight-line code, strings in place),
    reusing the bytes of a mapping it has already written (feeds granted the same items share one)."""
    if schema.get("type") != "record":
        raise Unsupported("templates are for records")
    fields = [(f["name"], compile_writer(f["type"]), "default" in f, f.get("default")) for f in schema["fields"]]
    env: dict[str, Any] = {"SMALL": _SMALL, "zigzag": zigzag, "MISSING": object()}
    consts = [f"c{i}" for i in range(sum(1 for f in fields if f[0] in varying) + 1)]
    body = ["    def write(values):", "        out = [c0]", "        append = out.append", "        get = values.get"]
    k = 0
    for i, (name, w, has_default, default) in enumerate(fields):
        if name not in varying:
            continue
        if has_default:
            env[f"d{i}"] = default
            body += [f"        x = get({name!r}, MISSING)", "        if x is MISSING:", f"            x = d{i}"]
        else:
            body.append(f"        x = values[{name!r}]")
        if w is _w_string:
            body += _inline_string("        ")
        else:
            env[f"w{i}"] = w
            body += ["        if type(x) is dict:",
                     "            hit = written.get(id(x))",
                     "            if hit is None or hit[0] is not x:",
                     "                part = []",
                     f"                w{i}(part, x)",
                     "                hit = written[id(x)] = (x, b''.join(part))",
                     "            append(hit[1])",
                     "        else:",
                     f"            w{i}(out, x)"]
        k += 1
        body.append(f"        append(c{k})")
    source = "\n".join([f"def make({', '.join(consts)}, written):", *body, "        return b''.join(out)",
                        "    return write"])
    exec(compile(source, f"<avro template {schema.get('name', 'record')}>", "exec"), env)  # noqa: S102
    make = env["make"]
    missing = env["MISSING"]

    def prepare(header: bytes, common: dict) -> Callable[[dict], bytes]:
        segments: list[bytes] = []
        buf = [header]
        for name, w, has_default, default in fields:
            if name in varying:
                segments.append(b"".join(buf))
                buf = []
                continue
            x = common.get(name, missing)
            if x is missing:
                if not has_default:
                    raise KeyError(name)
                x = default
            w(buf, x)
        segments.append(b"".join(buf))
        return make(*segments, {})

    return prepare
