"""The hot path's batched histogram observations: the same samples as one observe() per amount."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from topics.metrics import observe_all

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def samples(h: Histogram) -> list[tuple[str, dict, float]]:
    return [(s.name, s.labels, round(s.value, 9)) for metric in h.collect() for s in metric.samples
            if not s.name.endswith("_created")]


@given(st.lists(st.one_of(st.floats(min_value=0, max_value=100, allow_nan=False), st.sampled_from(BUCKETS)),
                max_size=50))
def test_observe_all_gives_the_samples_of_one_observe_each(amounts):
    one, batched = (Histogram("lag_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry()) for _ in range(2))
    for a in amounts:
        one.observe(a)
    observe_all(batched, amounts)
    assert samples(batched) == samples(one)


def test_observe_all_on_a_labelled_child_counts_an_amount_on_a_bound_in_that_bound():
    h = Histogram("wait_seconds", "x", ["process"], buckets=BUCKETS, registry=CollectorRegistry())
    observe_all(h.labels("worker"), [0.01, 0.01, 31.0])
    got = {s.labels.get("le"): s.value for m in h.collect() for s in m.samples if s.name.endswith("_bucket")}
    assert got["0.005"] == 0 and got["0.01"] == 2 and got["30.0"] == 2 and got["+Inf"] == 3
