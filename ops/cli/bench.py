"""`govbus bench ...`: the benchmarks of ops/bench, run from the command line."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys

import click

from ops.cli import common
from topics.settings import settings


@click.group()
def bench() -> None:
    """Benchmarks anyone can re-run; they print tables and assert nothing."""


def reports(command):
    """`--json`: the benchmark's tables go nowhere and its result is printed as one JSON object instead."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the tables.")
    @functools.wraps(command)
    def wrapper(*args, as_json: bool, **kwargs):
        if not as_json:
            command(*args, **kwargs)
            return
        with contextlib.redirect_stdout(io.StringIO()):
            result = command(*args, **kwargs)
        if isinstance(result, list):
            result = {"results": result}
        json.dump(result, sys.stdout, ensure_ascii=False, default=str)
        sys.stdout.write("\n")

    return wrapper


def _stack():
    from ops import stack

    return common.run(stack.up(settings()))


@bench.command("deadlines")
@click.argument("sizes", nargs=-1, type=int)
@reports
def bench_deadlines(sizes: tuple[int, ...]):
    """Memory and time per tick of the deadline engine at 10k / 100k / 1M open deadlines."""
    from ops.bench.deadlines import main as run_bench

    return run_bench(sizes or (10_000, 100_000, 1_000_000))


@bench.command("pipeline")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
@click.option("--rounds", default=3, show_default=True, help="Runs of each side, alternately.")
@reports
def bench_pipeline(n: int, rounds: int):
    """Publications per second through the pipeline to 10 feeds, against the best pass-through."""
    from ops.bench.pipeline import run

    return common.run(run(_stack(), n, rounds))


@bench.command("scaling")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
@click.option("--workers", "counts", default="1,2,4", show_default=True, help="Worker counts, comma-separated.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1),
              help="Timed runs per worker count, on one deployment; medians are reported.")
@reports
def bench_scaling(n: int, counts: str, rounds: int):
    """CPU seconds per 1,000 publications with 1, 2 and 4 workers sharing the partitions."""
    from ops.bench.pipeline import run_scaling

    try:
        workers = tuple(int(c) for c in counts.split(",") if c.strip())
    except ValueError:
        raise click.BadParameter(f"{counts!r}: worker counts such as 1,2,4", param_hint="--workers") from None
    return common.run(run_scaling(_stack(), n, workers, rounds))


@bench.command("latency")
@click.option("--rate", default=1000, show_default=True, help="Publications per second, evenly paced.")
@click.option("--seconds", default=30.0, show_default=True, help="Measured seconds, after a 5 s warm-up.")
@click.option("--workers", default=1, show_default=True, help="Worker processes sharing the partitions.")
@click.option("--rounds", default=3, show_default=True, help="Measured runs of each side, in turns.")
@reports
def bench_latency(rate: int, seconds: float, workers: int, rounds: int):
    """Publication to arrival on a feed at a steady rate: p50, p99, max, against the pass-through's floor."""
    from ops.bench.latency import run

    return common.run(run(_stack(), rate, seconds, workers, rounds))


@bench.command("codec")
@click.option("--records", "n", default=20_000, show_default=True)
@reports
def bench_codec(n: int):
    """The Avro codec against bare fastavro schemaless read/write on the same records."""
    from ops.bench.codec import run

    return run(n)


@bench.command("judge")
@click.option("--publications", "n", default=20_000, show_default=True)
@click.option("--rounds", default=8, show_default=True, help="Rounds of each, alternately.")
@reports
def bench_judge(n: int, rounds: int):
    """The worker's judging in this process alone, against the least Python for the same output records."""
    from ops.bench.judge import run

    return run(n, rounds)


@bench.command("ledger")
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the chain to verify.")
@click.option("--batches", default=50, show_default=True, help="Batches of 2,000 written each way.")
@reports
def bench_ledger(rows: int, batches: int):
    """The ledger sink's rows/s with the hash chain against without, and audit verify over ROWS rows."""
    from ops.bench.ledger import run

    return common.run(run(_stack().dsn, rows, batches))


@bench.command("scale")
@click.option("--deliveries", "n", default=5_000, show_default=True, help="Publications per point.")
@click.option("--subjects", "counts", default="100000,1000000,3500000", show_default=True,
              help="Subjects in the duplicate-collection memory, comma-separated.")
@reports
def bench_scale(n: int, counts: str):
    """Rate, CPU per publication and memory as feeds, grants, catalog entries and subjects grow."""
    from ops.bench.scale import run

    try:
        subjects = tuple(int(c) for c in counts.split(",") if c.strip())
    except ValueError:
        raise click.BadParameter(f"{counts!r}: counts such as 100000,1000000", param_hint="--subjects") from None
    return common.run(run(_stack(), n, subjects))
