"""`govbus bench ...`: the benchmarks of ops/bench, run from the command line."""

from __future__ import annotations

import click

from ops.cli import common
from topics.settings import settings


@click.group()
def bench() -> None:
    """Benchmarks anyone can re-run; they print tables and assert nothing."""


@bench.command("deadlines")
@click.argument("sizes", nargs=-1, type=int)
def bench_deadlines(sizes: tuple[int, ...]) -> None:
    """Memory and time per tick of the deadline engine at 10k / 100k / 1M open deadlines."""
    from ops.bench.deadlines import main as run_bench

    run_bench(sizes or (10_000, 100_000, 1_000_000))


@bench.command("pipeline")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
def bench_pipeline(n: int) -> None:
    """Deliveries per second through the pipeline to 10 feeds, next to a raw aiokafka loop."""
    from ops import stack
    from ops.bench.pipeline import run

    s = common.run(stack.up(settings()))
    common.run(run(s, n))


@bench.command("scaling")
@click.option("--deliveries", "n", default=20_000, show_default=True, help="Publications per run.")
def bench_scaling(n: int) -> None:
    """Deliveries per second with one worker, then with two sharing the partitions."""
    from ops import stack
    from ops.bench.pipeline import run_scaling

    s = common.run(stack.up(settings()))
    common.run(run_scaling(s, n))


@bench.command("latency")
@click.option("--rate", default=1000, show_default=True, help="Publications per second, evenly paced.")
@click.option("--seconds", default=30.0, show_default=True, help="Measured seconds, after a 5 s warm-up.")
@click.option("--workers", default=1, show_default=True, help="Worker processes sharing the partitions.")
def bench_latency(rate: int, seconds: float, workers: int) -> None:
    """Publication to arrival on a feed at a steady rate: p50, p99, max."""
    from ops import stack
    from ops.bench.latency import run

    s = common.run(stack.up(settings()))
    common.run(run(s, rate, seconds, workers))


@bench.command("codec")
@click.option("--records", "n", default=20_000, show_default=True)
def bench_codec(n: int) -> None:
    """The Avro codec against bare fastavro schemaless read/write on the same records."""
    from ops.bench.codec import run

    run(n)


@bench.command("ledger")
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the chain to verify.")
@click.option("--batches", default=50, show_default=True, help="Batches of 2,000 written each way.")
def bench_ledger(rows: int, batches: int) -> None:
    """The ledger sink's rows/s with the hash chain against without, and audit verify over ROWS rows."""
    from ops import stack
    from ops.bench.ledger import run

    s = common.run(stack.up(settings()))
    common.run(run(s.dsn, rows, batches))
