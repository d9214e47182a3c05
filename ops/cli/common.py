"""What the command modules share: running a coroutine with the bus's failures said in one line, parsing dates
and lists given as arguments, and running a service until it is signalled."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date

import click

from ops.events import InputError
from topics.settings import METRICS_PORTS, settings


class Group(click.Group):
    """click's group; an input that cannot become a record is reported as click reports its own errors: one line,
    exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            raise click.ClickException(str(exc)) from None


def run(coro):
    """`asyncio.run(coro)`; an unreachable broker or database, a topic not created, a record the schema
    refuses are a one-line error with what to do, not a traceback."""
    from aiokafka.errors import KafkaConnectionError

    from schemas.errors import SchemaMismatch
    from topics.views import TopicMissing

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        sys.exit(130)
    except TopicMissing as exc:
        raise click.ClickException(str(exc)) from None
    except SchemaMismatch as exc:
        # a value the command's own checks let through; events are encoded before any is sent
        raise click.ClickException(f"not sent: {exc.reason}") from None
    except KafkaConnectionError:
        s = settings()
        raise click.ClickException(
            f"cannot reach Kafka at {s.bootstrap}: start the local stack with `govbus up` "
            "(or `make run`), or point GOVBUS_KAFKA_BOOTSTRAP at a running cluster") from None
    except OSError as exc:
        if "Connect call failed" not in str(exc):
            raise
        raise click.ClickException(f"{exc}: is the stack up? (`govbus up`)") from None


def tail_feed(feed, show, limit: int) -> None:
    """Print each record of `feed` (a consumers.feed.Feed, not started) as `show` formats it, until `limit` of them
    (0: for good)."""
    async def tail() -> None:
        n = 0
        async with feed as f:
            async for rec in f:
                click.echo(show(rec))
                n += 1
                if limit and n >= limit:
                    break

    run(tail())


def date_argument(value: str) -> date:
    """A date argument, YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None


def date_option(value: str, option: str) -> date:
    """A date given to `option` as YYYY-MM-DD, exactly as the bus carries it."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or day.isoformat() != value:
        raise click.ClickException(f"{option} {value!r} is not a date of the form YYYY-MM-DD")
    return day


def split_list(value: str | None) -> list[str]:
    """The values of a comma-separated option, blanks left out."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def serve_metrics(process: str, what: str) -> None:
    """Serve the metrics of `process` (a key of METRICS_PORTS) on the port its variable gives, if any."""
    from topics import metrics

    var, _ = METRICS_PORTS[process]
    port = int(os.environ.get(var, "0"))
    try:
        metrics.serve(port, process)
    except OSError as exc:
        raise click.ClickException(f"{what} cannot serve its metrics on 127.0.0.1:{port} ({exc.strerror}): "
                                   f"set {var}") from None


async def until_signalled(service) -> None:
    """`service(stop)` until SIGINT or SIGTERM sets `stop`: it finishes its batch, commits and leaves its
    consumer group, so whoever replaces it (a restart by `govbus run`) gets the partitions at once."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service(stop)
