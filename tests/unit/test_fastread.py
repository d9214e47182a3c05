"""The compiled reader reads what fastavro reads, and leaves to fastavro whatever it cannot read."""

import io
from datetime import UTC, datetime

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import HEADER, MAGIC, default_codec
from schemas.errors import CodecError
from schemas.fastpath import Unsupported
from schemas.fastread import compile_reader

CODEC = default_codec()
DELIVERY = "govbus.exchange.DataDelivery"


def fastavro_read(schema, body: bytes):
    buf = io.BytesIO(body)
    record = schemaless_reader(buf, schema, None)
    return record, buf.tell()


def fastavro_write(schema, record) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


COMPILED = []
for _v in CODEC.versions:
    try:
        COMPILED.append((_v, compile_reader(_v.schema)))
    except Unsupported:
        pass


def test_the_publication_and_its_feed_record_are_read_by_the_compiled_reader():
    names = {v.name for v, _ in COMPILED}
    assert {DELIVERY, "govbus.exchange.FeedDelivery"} <= names


@pytest.mark.parametrize(("version", "read"), COMPILED, ids=[f"{v.name}.v{v.version}" for v, _ in COMPILED])
def test_the_compiled_reader_reads_fastavros_values_for_every_schema_it_takes(version, read):
    for record in generate_many(version.schema, 40):
        body = fastavro_write(version.schema, record)
        assert read(b"xx" + body, 2) == (fastavro_read(version.schema, body)[0], len(body) + 2)


# publications with any items and times: tests/unit/test_fastpath.py reads each back through the codec


def decode_either(data: bytes):
    """What the codec gives: the record, or the kind of error and its reason."""
    try:
        return CODEC.decode(data, DELIVERY).record
    except CodecError as exc:
        return type(exc), str(exc)


def fastavro_alone(data: bytes):
    """What the codec gave before it had a compiled reader: fastavro, and the same checks."""
    version = CODEC.latest[DELIVERY]
    body = data[HEADER:]
    try:
        record, end = fastavro_read(version.schema, body)
    except Exception:  # noqa: BLE001
        return "undecodable"
    return record if end == len(body) else "left over"


GOOD = CODEC.encode(DELIVERY, {"event_id": "e-1", "occurred_at": datetime(2026, 12, 6, tzinfo=UTC),
                               "publisher": "WY-MZ", "resource_code": "WY-MZ-DB-001", "subject_id": "1" * 18,
                               "items": {"姓名": "居民", "月救助金额": 650.0, "n": 3, "b": True, "x": None},
                               "system_code": "WY-MZ-JZ"})


@given(st.data())
def test_damaged_publications_get_fastavros_answer(data):
    body = bytearray(GOOD[HEADER:])
    how = data.draw(st.sampled_from(["cut", "flip", "append", "insert"]))
    at = data.draw(st.integers(0, len(body)))
    if how == "cut":
        body = body[:at]
    elif how == "flip" and at < len(body):
        body[at] ^= data.draw(st.integers(1, 255))
    elif how == "append":
        body += data.draw(st.binary(min_size=1, max_size=4))
    else:
        body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    damaged = MAGIC + CODEC.latest[DELIVERY].fingerprint + bytes(body)
    got, alone = decode_either(damaged), fastavro_alone(damaged)
    if isinstance(alone, dict):
        assert got == alone
    else:  # refused, with the reason fastavro's reading gives
        assert isinstance(got, tuple) and issubclass(got[0], CodecError)
        assert ("left over" in got[1]) == (alone == "left over")


def test_a_long_past_64_bits_is_left_to_fastavro():
    from schemas.fastread import Damaged, _long

    assert _long(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0)[0] == 2**63 - 1
    with pytest.raises(Damaged):
        _long(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 0)
