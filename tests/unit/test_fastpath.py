import io
from datetime import UTC, datetime, timedelta

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import HEADER, default_codec
from schemas.errors import SchemaMismatch
from schemas.fastpath import compile_writer, zigzag
from streams.app import FEED_NAMES
from streams.deliveries import Fan
from streams.rules.exchange import feed_records
from streams.rules.sharing import Route

CODEC = default_codec()
DEPARTMENTS = sorted(FEED_NAMES)


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
    data = CODEC.encode(name, record)
    # read back by the compiled reader (schemas/fastread.py): what fastavro reads
    assert CODEC.decode(data, name).record == schemaless_reader(io.BytesIO(data[HEADER:]), CODEC.latest[name].schema)
    assert CODEC.decode(data, name).record["items"] == items


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
LASTING = ("subscriber", "grant_id", "purpose")
SCOPED = ("items", "digest")


@given(st.lists(st.tuples(st.text(max_size=12), st.integers(0, 3), st.none() | st.text(max_size=20)),
                min_size=1, max_size=8),
       st.lists(st.dictionaries(st.text(max_size=8), scalars, max_size=4), min_size=4, max_size=4),
       st.none() | st.text(max_size=10))
def test_a_fanouts_parts_join_into_each_record_as_encode_makes_it(routes, scope_items, system_code):
    base = next(iter(generate_many(CODEC.latest[FEED].schema, 1)))
    base["system_code"] = system_code
    scopes = [(items, f"digest-{n}") for n, items in enumerate(scope_items)]
    parts = CODEC.fan_parts(FEED, LASTING, SCOPED)
    common = parts.common(CODEC.header(FEED), base)
    scoped = [parts.scoped(scope) for scope in scopes]
    for i, (sub, n, purpose) in enumerate(routes):
        lasting = (sub, f"g{i % 3}", purpose)
        record = {**base, **dict(zip(LASTING, lasting, strict=True)), **dict(zip(SCOPED, scopes[n], strict=True))}
        assert parts.join(common, parts.lasting(lasting), scoped[n]) == CODEC.encode(FEED, record)


def test_a_scope_is_written_as_it_is_now():
    parts = CODEC.fan_parts(FEED, LASTING, SCOPED)
    scope = ({"姓名": "甲"}, "d1")
    first = parts.scoped(scope)
    scope[0]["姓名"] = "乙"  # a new publication may reuse a dict: the bytes kept of an entry are not its new value's
    assert parts.scoped(scope) != first
    assert parts.scoped(scope) == parts.scoped(({"姓名": "乙"}, "d1"))


def test_a_part_that_cannot_take_a_value_raises_and_the_feed_is_encoded_whole_and_explained():
    record = next(iter(generate_many(CODEC.latest[FEED].schema, 1)))
    parts = CODEC.fan_parts(FEED, LASTING, SCOPED)
    cannot = (AttributeError, TypeError, KeyError, IndexError)  # whatever Python says of it
    with pytest.raises(cannot):
        parts.lasting((42, "g", None))
    with pytest.raises(cannot):
        parts.scoped(({}, None))
    with pytest.raises(cannot):
        parts.common(CODEC.header(FEED), {**record, "publisher": 7})
    publication = {"event_id": "e-1", "occurred_at": datetime(2026, 1, 1, 8), "publisher": "NJ-MZ",  # naive: fastavro's
                   "resource_code": "NJ-MZ-DB-001", "subject_id": "511024197512305672", "system_code": None,  # rules
                   "items": {"姓名": "甲"}}
    ways = [Route(DEPARTMENTS[0], "grant:0", "p", None)]
    now = datetime.now(UTC)
    assert Fan(ways).records(publication, now) == [(FEED_NAMES[f["subscriber"]], CODEC.encode(FEED, f))
                                                    for f in feed_records(publication, ways, now)]
    with pytest.raises(SchemaMismatch, match="publisher"):
        Fan(ways).records({**publication, "publisher": 7}, now)


@pytest.mark.rule("R-26.2")
@pytest.mark.rule("R-28.1")
@given(st.dictionaries(st.sampled_from(["姓名", "保障类别", "月救助金额", "地址"]), scalars, min_size=1),
       st.lists(st.tuples(st.none() | st.sets(st.sampled_from(["姓名", "保障类别", "月救助金额"])),
                          st.none() | st.text(max_size=6)), min_size=1, max_size=6),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_each_subscriber_gets_the_bytes_of_its_feed_record(items, grants, now):
    record = {"event_id": "e-1", "occurred_at": now, "publisher": "NJ-MZ", "resource_code": "NJ-MZ-DB-001",
              "subject_id": "511024197512305672", "system_code": None, "items": items}
    ways = [Route(DEPARTMENTS[i], f"grant:{i}", purpose, None if scope is None else tuple(sorted(scope)))
            for i, (scope, purpose) in enumerate(grants)]
    assert Fan(ways).records(record, now) == [(FEED_NAMES[f["subscriber"]], CODEC.encode(FEED, f))
                                              for f in feed_records(record, ways, now)]
