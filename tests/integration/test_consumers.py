"""The subscriber SDK and the ledger sink, against the real broker and database."""

import asyncio
import uuid
from datetime import UTC, datetime

from consumers.feed import Feed
from consumers.ledger import LedgerSink
from consumers.queries import connect
from schemas.codec import default_codec
from streams.rules.exchange import feed_records
from streams.rules.sharing import Route
from tests.helpers import delivery, produce

FEED = "govbus.exchange.FeedDelivery"


def feed_record(subscriber="NJ-MZ", **kw) -> dict:
    return feed_records(delivery(**kw), [Route(subscriber, "subscription:test", None, None)], datetime.now(UTC))[0]


async def take(feed: Feed, n: int, timeout: float = 15.0) -> list:
    out = []

    async def go():
        async for rec in feed:
            out.append(rec)
            if len(out) == n:
                return

    try:
        await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        pass
    return out


async def test_feed_drops_duplicates_and_resumes_after_restart_without_repeats(bus):
    codec = default_codec()
    a, b, c = feed_record(), feed_record(), feed_record()
    enc = {k: codec.encode(FEED, v) for k, v in (("a", a), ("b", b), ("c", c))}
    topic = bus.feed("NJ-MZ")
    await produce(bus.settings.bootstrap, topic, [enc["a"], enc["b"], enc["a"]])

    async with Feed("NJ-MZ", group_id="sdk", commit_every=1) as feed:
        got = await take(feed, 3, timeout=5)
        assert [r.event_id for r in got] == [a["event_id"], b["event_id"]]
        assert feed.duplicates_dropped == 1
        assert all(r.verify() for r in got)

    # the bus re-sends b (a worker restarted before its commit), and c is new
    await produce(bus.settings.bootstrap, topic, [enc["b"], enc["c"]])
    async with Feed("NJ-MZ", group_id="sdk") as feed:
        got = await take(feed, 2, timeout=5)
        assert [r.event_id for r in got] == [c["event_id"]]
        assert feed.duplicates_dropped == 1


async def test_feed_skips_unreadable_records_and_goes_on(bus):
    good = feed_record()
    await produce(bus.settings.bootstrap, bus.feed("NJ-MZ"), [b"garbage", default_codec().encode(FEED, good)])
    async with Feed("NJ-MZ", group_id="sdk2") as feed:
        got = await take(feed, 1)
        assert [r.event_id for r in got] == [good["event_id"]]
        assert feed.unreadable == 1


async def test_a_tampered_record_fails_verification(bus):
    rec = feed_record()
    rec["items"] = {**rec["items"], "姓名": "李四"}  # changed after the digest was taken
    await produce(bus.settings.bootstrap, bus.feed("NJ-MZ"), [default_codec().encode(FEED, rec)])
    async with Feed("NJ-MZ", group_id="sdk3") as feed:
        (got,) = await take(feed, 1)
        assert not got.verify()


async def test_ledger_sink_is_idempotent_on_event_id(stack):
    codec = default_codec()
    d = delivery()
    fed = feed_records(d, [Route(x, f"subscription:{x}", None, None) for x in ("NJ-MZ", "NJ-RS")], datetime.now(UTC))
    values = [codec.encode("govbus.exchange.DataDelivery", d), *(codec.encode(FEED, f) for f in fed)]
    sink = LedgerSink(stack.dsn)
    for _ in range(2):  # the same batch, replayed after a restart
        for i, v in enumerate(values):
            sink.add(v, 1_700_000_000_000, ("t", 0, i))
        await sink.flush()
    await sink.close()
    conn = await connect(stack.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_deliveries WHERE event_id=$1", d["event_id"]) == 1
        rows = await conn.fetch("SELECT subscriber FROM ledger_feed_deliveries WHERE event_id=$1 ORDER BY 1",
                                d["event_id"])
        assert [r["subscriber"] for r in rows] == ["NJ-MZ", "NJ-RS"]
    finally:
        await conn.close()


async def test_ledger_sink_keeps_its_batch_while_the_database_is_unreachable(stack):
    """The sink retries the same batch until the database answers; nothing is dropped."""
    import asyncpg

    d = delivery(event_id=f"outage-{uuid.uuid4().hex}")
    sink = LedgerSink("postgresql://postgres@127.0.0.1:1/govbus", max_backoff=0.2)  # nothing listens there
    sink.add(default_codec().encode("govbus.exchange.DataDelivery", d), 1_700_000_000_000, ("t", 0, 0))
    flush = asyncio.create_task(sink.flush())
    await asyncio.sleep(1.0)
    assert not flush.done()  # still retrying, batch kept
    sink.dsn = stack.dsn  # the database is back
    await asyncio.wait_for(flush, 10)
    await sink.close()
    conn = await asyncpg.connect(stack.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_deliveries WHERE event_id=$1", d["event_id"]) == 1
    finally:
        await conn.close()
