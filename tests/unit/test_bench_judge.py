"""The least-Python side of `govbus bench judge` makes the worker's own output records, byte for byte: were it to
make less, the bench's ratio would compare the rules' code with less work than theirs."""

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from ops.bench import judge
from streams.outputs import Outputs, key_hash


class Recorded(Outputs):
    """Outputs that keep each topic-partition's records in order, as (key, value)."""

    def __init__(self, partitions: dict[str, int]):
        super().__init__([judge.Unsent()], partitions)
        self.records: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)

    def add(self, topic, key, value, *, hashed=None, partition=None):
        if partition is None:
            partition = (key_hash(key) if hashed is None else hashed) % self.partitions[topic]
        self.records[(topic, partition)].append((key, value))

    def fan(self, key, hashed, records):
        for topic, value in records:
            self.add(topic, key, value, hashed=hashed)


@pytest.fixture
def bench_views():
    from streams.app import Changes, catalog, grants

    judge.views()
    yield
    catalog.apply(b"WY-MZ-DB-001", None)
    grants.by_resource.pop("WY-MZ-DB-001", None)
    Changes.bump()


def test_the_least_python_side_makes_the_workers_records(bench_views):
    from streams.deliveries import ACCEPTED_NAME, FEED_NAMES, PARTITIONS, SOURCES_NAME

    stream, least = judge.fresh_stream(), judge.LeastPython()
    # the first fills the memory, the second updates it, the third says again what the second said
    for edition, remembered in ((0, 300), (1, 300), (1, 0)):
        batch = judge.messages(300, edition)
        now = datetime.now(UTC)
        theirs, ours = Recorded(PARTITIONS), Recorded(PARTITIONS)
        judge.govbus(stream, batch, theirs, now)
        least.judge(batch, ours, now)
        assert ours.records == theirs.records
        per_topic = defaultdict(int)
        for (topic, _), records in theirs.records.items():
            per_topic[topic] += len(records)
        feeds = {FEED_NAMES[d] for d in judge.FANOUT}
        # every publication accepted and delivered to the ten departments, remembered when it changes what the
        # memory holds; nothing refused
        assert per_topic == {ACCEPTED_NAME: 300, **({SOURCES_NAME: remembered} if remembered else {}),
                             **dict.fromkeys(feeds, 300)}


def test_the_least_python_side_takes_nothing_but_the_benchs_publications(bench_views):
    from streams.deliveries import PARTITIONS

    least = judge.LeastPython()
    other = judge.messages(1, 0)[0]
    odd = other._replace(value=other.value.replace(b"WY-MZ-DB-001", b"WY-MZ-DB-002"))
    with pytest.raises(ValueError, match="bench's publications only"):
        least.judge([odd], Recorded(PARTITIONS), datetime.now(UTC))


def test_the_bench_reports_both_sides_and_their_ratio_round_by_round(bench_views, capsys):
    out = judge.run(200, rounds=2)
    for side in ("govbus", "least Python", "its calls alone"):
        assert 0 < out[side]["best_us"] <= out[side]["median_us"]
        # (the rate from the unrounded time: within a rounding of 0.05 µs of it)
        assert out[side]["rate_at_best"] == pytest.approx(1e6 / out[side]["best_us"], rel=0.01)
    low, high = out["ratio_range"]
    assert 0 < low <= out["ratio"] <= high
    assert "round by round" in capsys.readouterr().out
