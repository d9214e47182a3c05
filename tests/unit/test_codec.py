import io
import json
import shutil
from datetime import UTC, datetime

import pytest
from fastavro import schemaless_writer

from schemas.codec import HEADER, MAGIC, Codec, default_codec
from schemas.compat import evolution_report
from schemas.errors import BadMagic, SchemaMismatch, TruncatedMessage, Undecodable, UnknownSchema, WrongSchema
from tests.helpers import delivery

DELIVERY = "govbus.exchange.DataDelivery"


def rabin64(data: bytes) -> bytes:
    """CRC-64-AVRO as written out in the Avro specification, little-endian as on the wire."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp.to_bytes(8, "little")


def test_single_object_framing():
    codec = default_codec()
    rec = delivery()
    data = codec.encode(DELIVERY, rec)
    assert data[:2] == MAGIC == b"\xc3\x01"
    latest = codec.latest[DELIVERY]
    assert data[2:HEADER] == latest.fingerprint
    out = codec.decode(data, DELIVERY)
    assert out.record["event_id"] == rec["event_id"]
    assert out.record["items"] == rec["items"]
    assert out.version == latest.version


def test_fingerprints_are_crc64_avro_of_the_canonical_form():
    from fastavro.schema import to_parsing_canonical_form

    for v in default_codec().versions:
        assert v.fingerprint == rabin64(to_parsing_canonical_form(v.schema).encode())
    # the reference implementation's test vector: "int" -> 8247732601305521295, little-endian on the wire
    assert rabin64(b'"int"') == (8247732601305521295).to_bytes(8, "little")


def test_fingerprint_table_covers_every_schema_file():
    codec = default_codec()
    files = sorted(p.name for p in codec.versions[0].path.parent.glob("*.avsc"))
    assert sorted(v.path.name for v in codec.versions) == files
    assert len(codec.by_fingerprint) == len(files)


def test_old_data_reads_with_the_current_schema():
    codec = default_codec()
    v1 = next(v for v in codec.versions if v.name == DELIVERY and v.version == 1)
    rec = delivery()
    rec.pop("system_code")
    buf = io.BytesIO()
    buf.write(MAGIC + v1.fingerprint)
    schemaless_writer(buf, v1.schema, rec)
    out = codec.decode(buf.getvalue(), DELIVERY)
    assert out.version == 1
    assert out.record["system_code"] is None  # the v2 field, filled from its default
    assert out.record["subject_id"] == rec["subject_id"]


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"\xc3\x01\x00", TruncatedMessage, "shorter than the 10-byte"),
        (b"", TruncatedMessage, "0 bytes"),
        (b'{"event_id": "x"}', BadMagic, "not the Avro single-object marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", UnknownSchema, "fingerprint 0000000000000000"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(data, error, words):
    with pytest.raises(error) as exc:
        default_codec().decode(data)
    assert words in exc.value.reason
    assert exc.value.retriable is False


def test_body_that_does_not_match_the_writer_schema():
    codec = default_codec()
    sub = codec.encode("govbus.exchange.Subscription", {
        "event_id": "e", "occurred_at": datetime.now(UTC), "subscriber": "NJ-MZ", "resource_code": "R",
        "active": True})
    forged = MAGIC + codec.latest[DELIVERY].fingerprint + sub[HEADER:]
    with pytest.raises(Undecodable):
        codec.decode(forged, DELIVERY)
    with pytest.raises(Undecodable, match="left over"):
        codec.decode(codec.encode(DELIVERY, delivery()) + b"\x00\x00", DELIVERY)


def test_a_record_of_another_type_is_refused_on_a_topic():
    codec = default_codec()
    sub = codec.encode("govbus.exchange.Subscription", {
        "event_id": "e", "occurred_at": datetime.now(UTC), "subscriber": "NJ-MZ", "resource_code": "R",
        "active": True})
    with pytest.raises(WrongSchema, match="carries govbus.exchange.DataDelivery"):
        codec.decode(sub, DELIVERY)


def test_encoding_a_record_that_does_not_match_names_the_field():
    rec = delivery(items={"a": [1, 2]})
    with pytest.raises(SchemaMismatch, match="items"):
        default_codec().encode(DELIVERY, rec)


def test_every_kept_version_can_be_read_by_its_successor():
    report = evolution_report(default_codec())
    assert report, "schemas/ keeps at least one evolved record type"
    assert all(not problems for problems in report.values()), report


def test_a_backward_incompatible_change_is_caught(tmp_path):
    src = default_codec().latest[DELIVERY].path
    for p in src.parent.glob("*.avsc"):
        shutil.copy(p, tmp_path / p.name)
    schema = json.loads(src.read_text())
    schema["fields"].append({"name": "county", "type": "string"})  # new field without a default
    (tmp_path / f"{DELIVERY}.v3.avsc").write_text(json.dumps(schema))
    report = evolution_report(Codec(tmp_path))
    problems = report[f"{DELIVERY} v2 -> v3"]
    assert problems and any("county" in p for p in problems)
