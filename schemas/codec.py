"""Avro single-object encoding (C3 01 + CRC-64-AVRO fingerprint + body) over every schema version kept in
schemas/, so old events stay readable."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from schemas.errors import (
    BadMagic,
    SchemaMismatch,
    TruncatedMessage,
    Undecodable,
    UnknownSchema,
    WrongSchema,
)
from schemas.fastpath import FanParts, Unsupported, compile_fanout, compile_writer
from schemas.fastread import compile_reader

SCHEMA_DIR = Path(__file__).resolve().parent
MAGIC = b"\xc3\x01"
HEADER = len(MAGIC) + 8
_FILE = re.compile(r"^(?P<name>[\w.]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # full name, e.g. govbus.exchange.DataDelivery
    version: int
    schema: Any  # parsed by fastavro
    fingerprint: bytes  # 8 bytes, little-endian, as on the wire
    path: Path

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


class Decoded(NamedTuple):  # a tuple: cheap to make once per message
    name: str
    version: int
    record: dict


class Codec:
    def __init__(self, directory: Path = SCHEMA_DIR):
        self.versions: list[SchemaVersion] = []
        for path in sorted(directory.glob("*.avsc")):
            m = _FILE.match(path.name)
            if not m:
                raise ValueError(f"{path.name}: schema files are named <full name>.v<N>.avsc")
            raw = json.loads(path.read_text())
            full = f"{raw['namespace']}.{raw['name']}"
            if full != m["name"]:
                raise ValueError(f"{path.name} declares {full}; the file name must match")
            parsed = parse_schema(raw)  # keeps fastavro's "parsed" mark: writers then skip re-parsing
            fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
            self.versions.append(SchemaVersion(full, int(m["version"]), parsed, fp, path))
        self.by_fingerprint = {v.fingerprint: v for v in self.versions}
        if len(self.by_fingerprint) != len(self.versions):
            raise ValueError("two schema files have the same canonical form")
        self.latest: dict[str, SchemaVersion] = {}
        for v in sorted(self.versions, key=lambda v: v.version):
            self.latest[v.name] = v
        self._headers = {name: MAGIC + v.fingerprint for name, v in self.latest.items()}
        # writer fingerprint -> the reader schema to resolve to (None: the writer is the newest)
        self._resolve_to = {v.fingerprint: None if self.latest[v.name] is v else self.latest[v.name].schema
                            for v in self.versions}
        # single-object header (marker + fingerprint) -> the writer, the reader schema to resolve to, and the
        # compiled reader of the newest versions (None: fastavro reads it)
        self._reading = {MAGIC + v.fingerprint: (v, self._resolve_to[v.fingerprint], self._reader(v))
                         for v in self.versions}
        self._fast: dict[str, Any] = {}
        self._fanouts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], FanParts | None] = {}
        for name, v in self.latest.items():
            try:
                self._fast[name] = compile_writer(v.schema)
            except Unsupported:
                pass

    def fan_parts(self, name: str, lasting: tuple[str, ...], scoped: tuple[str, ...]) -> FanParts | None:
        """The compiled parts of `name`'s newest version for a record fanned out to many recipients (see
        schemas.fastpath.FanParts), with the single-object header that frames each record; None when the schema
        has a shape they do not take. What a part cannot write, `encode` does (and explains)."""
        key = (name, lasting, scoped)
        if key not in self._fanouts:
            try:
                self._fanouts[key] = compile_fanout(self.latest[name].schema, lasting, scoped)
            except Unsupported:
                self._fanouts[key] = None
        return self._fanouts[key]

    def header(self, name: str) -> bytes:
        """The single-object header of `name`'s newest version: the marker and its schema's fingerprint."""
        return self._headers[name]

    def encode(self, name: str, record: dict) -> bytes:
        """Frame `record` with the newest version of `name`; SchemaMismatch says which field is wrong."""
        fast = self._fast.get(name)
        if fast is not None:
            out = [self._headers[name]]
            try:
                fast(out, record)
                return b"".join(out)
            except Exception:  # noqa: S110  (fastavro below decides, and explains what is wrong)
                pass
        try:
            schema = self.latest[name]
        except KeyError:
            raise UnknownSchema(f"no schema named {name!r} in schemas/") from None
        buf = io.BytesIO()
        buf.write(self._headers[name])
        try:
            schemaless_writer(buf, schema.schema, record)
        except Exception as exc:  # fastavro raises several types; explain with the validator
            raise SchemaMismatch(self._explain(schema, record, exc)) from exc
        return buf.getvalue()

    @staticmethod
    def _explain(schema: SchemaVersion, record: Any, exc: Exception) -> str:
        try:
            validate(record, schema.schema, raise_errors=True)
        except ValidationError as verr:
            fields = "; ".join(str(e) for e in verr.errors)
            return f"record does not match {schema.name} v{schema.version}: {fields}"
        except Exception:
            pass
        return f"record does not match {schema.name} v{schema.version}: {exc}"

    def writer_of(self, data: bytes) -> SchemaVersion:
        if len(data) < HEADER:
            raise TruncatedMessage(
                f"message is {len(data)} bytes, shorter than the {HEADER}-byte Avro single-object header"
            )
        if data[:2] != MAGIC:
            raise BadMagic(
                f"message starts with {data[:2].hex(' ')}, not the Avro single-object marker c3 01; "
                "encode events with the govbus codec or any Avro library's single-object encoder"
            )
        fp = bytes(data[2:HEADER])
        try:
            return self.by_fingerprint[fp]
        except KeyError:
            raise UnknownSchema(
                f"schema fingerprint {fp.hex()} is not one of the {len(self.versions)} versions in schemas/; "
                "register the schema version before publishing with it"
            ) from None

    def _reader(self, v: SchemaVersion) -> Callable[[bytes, int], tuple[Any, int]] | None:
        if self._resolve_to[v.fingerprint] is not None:
            return None  # an older version, resolved to the newest by fastavro
        try:
            return compile_reader(v.schema)
        except Unsupported:
            return None

    def decode(self, data: bytes, expect: str | None = None) -> Decoded:
        reading = self._reading.get(data[:HEADER])  # one look-up: the marker and the fingerprint at once
        if reading is None:
            self.writer_of(data)  # raises the error that says what is wrong
        writer, resolve_to, fast = reading
        if expect is not None and writer.name != expect:
            raise WrongSchema(f"this topic carries {expect}, not {writer.name} v{writer.version}")
        if fast is not None:
            try:
                record, end = fast(data, HEADER)
                if end == len(data):
                    return Decoded(writer.name, writer.version, record)
            except Exception:  # noqa: S110  (fastavro below decides, and says what is wrong)
                pass
        body = data[HEADER:]  # fastavro reads a buffer from its start much faster than from an offset
        buf = io.BytesIO(body)
        try:
            record = schemaless_reader(buf, writer.schema, resolve_to)
        except Exception as exc:
            raise Undecodable(
                f"body does not decode as {writer.name} v{writer.version}: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(body):
            raise Undecodable(
                f"body does not match {writer.name} v{writer.version}: "
                f"{len(body) - buf.tell()} bytes left over after the record"
            )
        return Decoded(writer.name, writer.version, record)


@lru_cache(maxsize=1)
def default_codec() -> Codec:
    return Codec()
