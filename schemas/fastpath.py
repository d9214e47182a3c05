"""A compiled Avro binary writer for the shapes govbus schemas use: the same bytes as fastavro, written faster."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Writer = Callable[[list, Any], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct("<d").pack


def _zigzag_of(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


SMALL_N = 8192
_SMALL = [_zigzag_of(n) for n in range(SMALL_N)]  # the lengths and counts most values have: 0..63 one byte, then two


class Unsupported(Exception):
    """The schema uses something this writer does not compile."""


def zigzag(n: int) -> bytes:
    if 0 <= n < SMALL_N:
        return _SMALL[n]
    return _zigzag_of(n)


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
    out.append(_SMALL[n] if n < SMALL_N else zigzag(n))
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
    return [f"{indent}b = x.encode()", f"{indent}n = len(b)",
            f"{indent}append(SMALL[n] if n < {SMALL_N} else zigzag(n))", f"{indent}append(b)"]


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
                append(_SMALL[n] if n < SMALL_N else zigzag(n))
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
    feeds): `prepare(header, common)` encodes every other field of `common` once (straight-line code), and the
    function it returns writes a record from its varying values alone, reusing the bytes of a mapping it has
    already written (feeds granted the same items share one) and of a string or optional string it has
    written before (a subscriber, a grant, a purpose recur publication after publication)."""
    if schema.get("type") != "record":
        raise Unsupported("templates are for records")
    fields = [(f["name"], compile_writer(f["type"]), "default" in f, f.get("default"), f["type"])
              for f in schema["fields"]]
    env: dict[str, Any] = {"SMALL": _SMALL, "zigzag": zigzag, "MISSING": object()}
    prep = ["def prepare(header, common):", "    out = [header]", "    append = out.append", "    get = common.get",
            "    segments = []"]
    body = ["    def write(values):", "        out = [c0]", "        append = out.append", "        get = values.get"]
    consts = ["c0"]
    for i, (name, w, has_default, default, kind) in enumerate(fields):
        indent = "        " if name in varying else "    "
        lines = body if name in varying else prep
        if has_default:
            env[f"d{i}"] = default
            lines += [f"{indent}x = get({name!r}, MISSING)", f"{indent}if x is MISSING:", f"{indent}    x = d{i}"]
        else:
            lines.append(f"{indent}x = {'values' if name in varying else 'common'}[{name!r}]")
        if name not in varying:
            if w is _w_string:
                prep.extend(_inline_string(indent))
            else:
                env[f"w{i}"] = w
                prep.append(f"    w{i}(out, x)")
            continue
        prep += ["    segments.append(b''.join(out))", "    out = []", "    append = out.append"]
        env[f"w{i}"] = w
        if w is _w_string or _optional_string(kind):
            env[f"seen{i}"] = {}  # value -> its bytes, kept across publications; emptied when it grows large
            body += [f"        hit = seen{i}.get(x)",
                     "        if hit is None:",
                     "            part = []",
                     f"            w{i}(part, x)",
                     "            hit = b''.join(part)",
                     f"            if len(seen{i}) >= 4096:",
                     f"                seen{i}.clear()",
                     f"            seen{i}[x] = hit",
                     "        append(hit)"]
        else:
            body += ["        if type(x) is dict:",
                     "            hit = written.get(id(x))",
                     "            if hit is None or hit[0] is not x:",
                     "                part = []",
                     f"                w{i}(part, x)",
                     "                hit = written[id(x)] = (x, b''.join(part))",
                     "            append(hit[1])",
                     "        else:",
                     f"            w{i}(out, x)"]
        consts.append(f"c{len(consts)}")
        body.append(f"        append({consts[-1]})")
    prep += ["    segments.append(b''.join(out))", "    return make(*segments, {})"]
    source = "\n".join([f"def make({', '.join(consts)}, written):", *body, "        return b''.join(out)",
                        "    return write", "", *prep])
    exec(compile(source, f"<avro template {schema.get('name', 'record')}>", "exec"), env)  # noqa: S102
    return env["prepare"]


def _optional_string(kind: Any) -> bool:
    """A union of null and string: its values (None or a str) are keys that cannot be confused."""
    return isinstance(kind, list) and set(kind) <= {"null", "string"}
