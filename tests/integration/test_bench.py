"""The benchmarks run as anyone would run them, on the suite's broker, small: what they report is complete and
holds together (no timing is asserted; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from ops.bench import latency
from ops.bench.pipeline import publications, run, run_scaling
from topics.settings import REPO_ROOT

pytestmark = pytest.mark.integration


async def test_pipeline_against_the_pass_through_reports_both_sides_and_their_cpu(stack, capsys):
    out = await run(stack, 400, rounds=2)
    assert set(out) >= {"raw", "pipeline", "ratio", "ratio_median"}
    assert out["ratio"] == pytest.approx(out["pipeline"] / out["raw"])
    for side in ("raw", "pipeline"):
        d = out["details"][side]
        assert len(d["runs"]) == 2 and d["best"] == max(r["rate"] for r in d["runs"]) > 0
        # the processing process's own CPU over the timed part, to the nanosecond: the pass-through's few hundred
        # publications take less than one clock tick of /proc
        assert all(0 < r["cpu_per_1000"] < 60 for r in d["runs"])
    assert out["cpu_ratio"] == pytest.approx(out["details"]["pipeline"]["cpu_per_1000"]
                                             / out["details"]["raw"]["cpu_per_1000"])
    printed = capsys.readouterr().out
    assert "best pass-through (x10)" in printed and "ratio pipeline / pass-through" in printed


async def test_scaling_counts_cpu_per_publication_and_nothing_processed_twice(stack):
    out = await run_scaling(stack, 400, (1, 2), rounds=2)
    assert set(out["workers"]) == {1, 2}
    for k, r in out["workers"].items():
        assert r["feed_records"] == 2 * 400 and r["twice"] == 0, (k, r)  # two rounds, each publication once
        assert len(r["rounds"]) == 2
        assert r["cpu_per_1000"] == statistics.median(x["cpu_per_1000"] for x in r["rounds"])
        assert r["cpu_per_1000"] > 0
    assert out["workers"][1]["cpu_vs_one"] == 1.0


async def test_latency_measures_both_sides_in_turns_with_medians_of_their_rounds(stack):
    out = await latency.run(stack, 200, 1.0, rounds=2)
    for side in ("raw", "pipeline"):
        r = out[side]
        assert len(r["rounds"]) == 2
        # every publication reached the feed, in both rounds; those made after the warm-up are measured: the 200
        # due after it, and those due just before its end that a busy machine made just after it (the whole suite on
        # 2 cores has made the publisher 55 ms late there; 40 are 200 ms)
        assert all(x["sent"] == x["arrived"] == 1200 for x in r["rounds"]), r["rounds"]
        assert all(195 <= x["count"] <= 240 for x in r["rounds"]), r["rounds"]
        assert r["p99"] == statistics.median(x["p99"] for x in r["rounds"])
        assert r["max"] == max(x["max"] for x in r["rounds"]) >= r["p99"] >= r["p50"] > 0
        assert 0 < r["busy"] < 2  # its share of a core, of two
    assert out["p99_ratio"] == pytest.approx(out["pipeline"]["p99"] / out["raw"]["p99"])
    # and round by round, each govbus round against the floor's just before it
    turns = zip(out["raw"]["rounds"], out["pipeline"]["rounds"], strict=True)
    assert out["p99_ratio_by_round"] == pytest.approx([p["p99"] / r["p99"] for r, p in turns])
    assert out["p99_ratio_paired"] == pytest.approx(statistics.median(out["p99_ratio_by_round"]))


def test_every_bench_prints_one_json_object_with_json():
    done = subprocess.run([str(Path(sys.executable).parent / "govbus"), "bench", "codec", "--records", "200",
                           "--json"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert {r["schema"] for r in result["results"]} >= {"DataDelivery", "FeedDelivery"}


def test_each_round_updates_the_same_subjects_with_new_values():
    from schemas.codec import default_codec

    codec = default_codec()
    first, second = publications(50), publications(50, edition=1)
    assert [k for k, _ in first] == [k for k, _ in second]
    for (_, a), (_, b) in zip(first, second, strict=True):
        a, b = (codec.decode(v, "govbus.exchange.DataDelivery").record for v in (a, b))
        assert a["subject_id"] == b["subject_id"] and a["items"] != b["items"]
