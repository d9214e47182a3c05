"""A compiled Avro binary writer for the shapes govbus schemas use: the same bytes as fastavro, written faster."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
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


def millis(t: datetime) -> int:
    """A timezone-aware datetime as Avro's timestamp-millis: milliseconds since the epoch, as fastavro counts them."""
    d = t - EPOCH
    return (d.days * 86400 + d.seconds) * 1000 + int(d.microseconds / 1000)


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
    encoded = zigzag(millis(v))
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


@dataclass(frozen=True)
class Shapes:
    """How one compiler (the writer here, the reader of schemas/fastread.py) makes each shape of schema govbus's
    schemas use; `compile_shape` picks the shape, so the two take the same shapes."""

    primitives: dict[str, Callable]
    union: Callable[[list], Callable]
    timestamp_millis: Callable
    record: Callable[[dict], Callable]
    map: Callable[[Callable], Callable]  # from the compiled values
    array: Callable[[Callable], Callable]  # from the compiled items


def compile_shape(schema: Any, shapes: Shapes) -> Callable:
    if isinstance(schema, str):
        if schema in shapes.primitives:
            return shapes.primitives[schema]
        raise Unsupported(f"named reference {schema}")
    if isinstance(schema, list):
        return shapes.union(schema)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "timestamp-millis" and kind == "long":
        return shapes.timestamp_millis
    if logical:
        raise Unsupported(logical)
    if kind in shapes.primitives:
        return shapes.primitives[kind]
    if kind == "record":
        return shapes.record(schema)
    if kind == "map":
        return shapes.map(compile_shape(schema["values"], shapes))
    if kind == "array":
        return shapes.array(compile_shape(schema["items"], shapes))
    raise Unsupported(kind)


def compile_writer(schema: Any) -> Writer:
    return compile_shape(schema, WRITING)


def _read_field(i: int, f: dict, env: dict, mapping: str) -> list[str]:
    """Source lines that set `x` to field `i` of the dict `mapping` (whose .get is bound to `get`), its default
    when it is missing; a missing field without one raises KeyError (the codec falls back and explains)."""
    if "default" not in f:
        return [f"    x = {mapping}[{f['name']!r}]"]
    env[f"d{i}"] = f["default"]
    return [f"    x = get({f['name']!r}, MISSING)", "    if x is MISSING:", f"        x = d{i}"]


def _write_field(i: int, f: dict, env: dict) -> list[str]:
    """Source lines that write `x` as field `i`: a string in place (as _w_string does, without the call), anything
    else by its compiled writer."""
    w = compile_writer(f["type"])
    if w is _w_string:
        return ["    b = x.encode()", "    n = len(b)", f"    append(SMALL[n] if n < {SMALL_N} else zigzag(n))",
                "    append(b)"]
    env[f"w{i}"] = w
    return [f"    w{i}(out, x)"]


def _record(schema: dict) -> Writer:
    """A straight-line function for the record, strings written in place: no loop over fields, no
    call per string field."""
    env: dict[str, Any] = {"SMALL": _SMALL, "zigzag": zigzag, "MISSING": object()}
    lines = ["def write(out, v):", "    append = out.append", "    get = v.get"]
    for i, f in enumerate(schema["fields"]):
        lines += _read_field(i, f, env, "v") + _write_field(i, f, env)
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

    write.by_type = by_type  # type: ignore[attr-defined]
    return write


def _map(values: Writer) -> Writer:
    by_type = getattr(values, "by_type", None)
    if by_type is not None:
        return _map_of_scalars(by_type)

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


def _map_of_scalars(by_type: dict) -> Writer:
    """A map whose values are a union of primitives (a publication's items): text and numbers, the usual
    values, written in place, the rest as the union writes them. An entry's bytes are kept for the same value
    object under the same name: the scopes of one fan-out are projections of one publication's items, and
    write the same entries again."""
    text = by_type[str][0] if str in by_type else None
    number = by_type[float][0] if float in by_type else None
    written: dict[str, tuple[Any, bytes]] = {}  # name -> (the value object, the entry's bytes)

    def entry(k: str, x: Any) -> bytes:
        b = k.encode()
        n = len(b)
        parts = [_SMALL[n] if n < SMALL_N else zigzag(n), b]
        t = type(x)
        if t is str and text is not None:
            b = x.encode()
            n = len(b)
            parts += (text, _SMALL[n] if n < SMALL_N else zigzag(n), b)
        elif t is float and number is not None:
            parts += (number, _DOUBLE(x))
        else:
            index, w = by_type[t]  # KeyError: no branch for this type
            parts.append(index)
            w(parts, x)
        return b"".join(parts)

    def write(out: list, v: Any) -> None:
        if v:
            append = out.append
            append(zigzag(len(v)))
            get = written.get
            for k, x in v.items():
                hit = get(k)
                if hit is None or hit[0] is not x:
                    if len(written) >= 4096:
                        written.clear()
                    hit = written[k] = (x, entry(k, x))
                append(hit[1])
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


WRITING = Shapes(PRIMITIVES, _union, _w_timestamp_millis, _record, _map, _array)


@dataclass(frozen=True)
class FanParts:
    """One record fanned out to many recipients (a publication to its feeds), encoded in runs: the record's fields
    in the schema's order fall into runs of consecutive fields of one kind, common (the same in every record of one
    fan-out), lasting (a recipient's own, the same publication after publication: a subscriber, its grant) or scoped
    (shared by some records of one fan-out: the items and digest of one scope). Each kind's runs are encoded on their
    own, once for what they are the same for, and a record's bytes are its runs joined in order:

        join(common(header, record), lasting(lasting_values), scoped(scoped_values))

    the same bytes as the codec's encode of the whole record. The tuples hold those fields' values in the schema's
    order. A value a part cannot take (of the wrong type, a tuple too short) makes it raise; the caller then encodes
    the record whole, which decides and explains."""

    common: Callable[[bytes, dict], tuple]  # (single-object header, the record) -> the common runs, header first
    lasting: Callable[[tuple], tuple]
    scoped: Callable[[tuple], tuple]
    join: Callable[[tuple, tuple, tuple], bytes]


def compile_fanout(schema: dict, lasting: tuple[str, ...], scoped: tuple[str, ...]) -> FanParts:
    """The FanParts of a record schema, each part straight-line code."""
    if schema.get("type") != "record":
        raise Unsupported("fan-outs are for records")
    fields = schema["fields"]
    names = [f["name"] for f in fields]
    if [n for n in names if n in lasting] != list(lasting) or [n for n in names if n in scoped] != list(scoped):
        raise Unsupported("the lasting and scoped fields are fields of the record, in the schema's order")
    runs: list[tuple[str, list[int]]] = []  # consecutive fields of one kind: c(ommon), l(asting), s(coped)
    for i, name in enumerate(names):
        kind = "l" if name in lasting else "s" if name in scoped else "c"
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(i)
        else:
            runs.append((kind, [i]))
    env: dict[str, Any] = {"SMALL": _SMALL, "zigzag": zigzag, "MISSING": object()}
    code = {kind: [f"def {fn}({arg}):", "    out = []", "    append = out.append", "    parts = []"]
            for kind, fn, arg in (("c", "common_runs", "header, common"), ("l", "lasting_runs", "v"),
                                  ("s", "scoped_runs", "v"))}
    code["c"] += ["    parts.append(header)", "    get = common.get"]
    taken = {"l": 0, "s": 0}  # values of each tuple used so far
    record = ["c[0]"]  # the record's bytes in order: the header, then the runs
    made = {"c": 1, "l": 0, "s": 0}
    for kind, indices in runs:
        lines = code[kind]
        for i in indices:
            if kind == "c":
                lines += _read_field(i, fields[i], env, "common")
            else:
                lines.append(f"    x = v[{taken[kind]}]")
                taken[kind] += 1
            lines += _write_field(i, fields[i], env)
        lines += ["    parts.append(b''.join(out))", "    out = []", "    append = out.append"]
        record.append(f"{kind}[{made[kind]}]")
        made[kind] += 1
    for kind in code:
        code[kind].append("    return tuple(parts)")
    join = ["def join(c, l, s):", f"    return b''.join(({', '.join(record)},))"]
    source = "\n".join([*code["c"], "", *code["l"], "", *code["s"], "", *join])
    exec(compile(source, f"<avro fan-out {schema.get('name', 'record')}>", "exec"), env)  # noqa: S102
    return FanParts(env["common_runs"], env["lasting_runs"], env["scoped_runs"], env["join"])
