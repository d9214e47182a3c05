import io
from datetime import UTC, datetime, timedelta

import pytest
from fastavro import schemaless_writer
from fastavro.utils import generate_many
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import HEADER, default_codec
from schemas.errors import SchemaMismatch
from schemas.fastpath import compile_writer, zigzag

CODEC = default_codec()


def fastavro_bytes(name: str, record: dict) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, CODEC.latest[name].schema, record)
    return buf.getvalue()


def compiled_bytes(name: str, record: dict) -> bytes:
    out: list = []
    compile_writer(CODEC.latest[name].schema)(out, record)
    return b"".join(out)


@pytest.mark.parametrize("name", sorted(CODEC.latest))
def test_the_compiled_writer_writes_fastavros_bytes_for_every_schema(name):
    for record in generate_many(CODEC.latest[name].schema, 50):
        assert compiled_bytes(name, record) == fastavro_bytes(name, record)


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
                    st.floats(allow_nan=False), st.text(max_size=80))


@given(items=st.dictionaries(st.text(max_size=20), scalars, max_size=12),
       when=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       text=st.text(max_size=200))
def test_deliveries_with_any_items_and_times(items, when, text):
    record = {"event_id": text or "e", "occurred_at": when, "publisher": "NJ-GA", "resource_code": "R",
              "subject_id": text, "items": items, "system_code": None if len(text) % 2 else text}
    name = "govbus.exchange.DataDelivery"
    assert compiled_bytes(name, record) == fastavro_bytes(name, record)
    assert CODEC.decode(CODEC.encode(name, record), name).record["items"] == items


def test_zigzag_matches_the_avro_specification():
    assert [zigzag(n) for n in (0, -1, 1, -2, 2, 63, -64, 64)] == [
        b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x7e", b"\x7f", b"\x80\x01"]


def test_a_record_that_does_not_fit_falls_back_to_fastavros_explanation():
    from schemas.errors import SchemaMismatch

    bad = {"event_id": "e", "occurred_at": datetime.now(UTC), "publisher": 5, "resource_code": "R",
           "subject_id": "s", "items": {}}
    with pytest.raises(SchemaMismatch, match="publisher"):
        CODEC.encode("govbus.exchange.DataDelivery", bad)
    naive = {**bad, "publisher": "P", "occurred_at": datetime(2026, 1, 1) + timedelta(hours=1)}
    data = CODEC.encode("govbus.exchange.DataDelivery", naive)  # fastavro's rules for naive datetimes
    assert data[HEADER:] == fastavro_bytes("govbus.exchange.DataDelivery", naive)


FEED = "govbus.exchange.FeedDelivery"
PER_FEED = frozenset({"subscriber", "items", "grant_id", "purpose", "digest"})


@given(st.lists(st.tuples(st.text(max_size=12), st.dictionaries(st.text(max_size=8), scalars, max_size=4),
                          st.none() | st.text(max_size=20)), min_size=1, max_size=6),
       st.none() | st.text(max_size=10))
def test_a_fanout_encodes_each_record_as_encode_does(variants, system_code):
    shared_items: dict = {"姓名": "居民"}
    base = next(iter(generate_many(CODEC.latest[FEED].schema, 1)))
    base["system_code"] = system_code
    records = [{**base, "subscriber": sub, "items": items or shared_items, "purpose": purpose, "grant_id": f"g{i}",
                "digest": sub[::-1]} for i, (sub, items, purpose) in enumerate(variants)]
    encode = CODEC.encoder(FEED, records[0], PER_FEED)
    assert [encode(r) for r in records] == [CODEC.encode(FEED, r) for r in records]


def test_a_fanout_record_that_does_not_fit_is_explained_like_encode():
    record = next(iter(generate_many(CODEC.latest[FEED].schema, 1)))
    encode = CODEC.encoder(FEED, record, PER_FEED)
    with pytest.raises(SchemaMismatch, match="subscriber"):
        encode({**record, "subscriber": 42})
