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
        from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

        from consumers.feed import NotAuthorized
        from topics.settings import SettingsError

        try:
            return super().invoke(ctx)
        except (InputError, SettingsError, NotAuthorized) as exc:
            raise click.ClickException(str(exc)) from None
        except TopicAuthorizationFailedError as exc:
            raise click.ClickException(f"the broker refuses {_user()} the topic {_named(exc)}: a department writes "
                                       "only its own inbound topic (its data, and its officers' commands given "
                                       "`--as` itself), and reads its own feed and the public topics "
                                       f"(`govbus acls list --principal {_user()}` shows its rights)") from None
        except GroupAuthorizationFailedError as exc:
            raise click.ClickException(f"the broker refuses {_user()} the consumer group {_named(exc)}: a "
                                       f"department's groups are named after it, `{_user()}.<anything>`") from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise click.ClickException(f"{exc.filename}: {exc.strerror}") from None


def _user() -> str:
    """Who the broker takes this client for."""
    try:
        return settings().kafka_security.username or "this client"
    except Exception:  # noqa: BLE001  (only for a message)
        return "this client"


def _named(exc: Exception) -> str:
    """The topic or group an aiokafka authorization error names (its first argument)."""
    return str(exc.args[0]) if exc.args else "asked for"


class DepartmentCode(click.ParamType):
    """A department's code, as the registry (topics/departments.yaml) has it: an unknown one, or a misspelled one,
    is refused before anything is sent or looked up, with the nearest codes named."""

    name = "DEPT"

    def convert(self, value, param, ctx):
        import difflib

        from topics.departments import load

        known = load()
        if value in known:
            return value
        near = difflib.get_close_matches(str(value).upper(), known, n=3, cutoff=0.6)
        self.fail(f"{value} is not a department registered on the bus (topics/departments.yaml)"
                  + (f"; did you mean {' or '.join(near)}?" if near else ""), param, ctx)


DEPARTMENT = DepartmentCode()


class CountyCode(click.ParamType):
    """A county, district or zone of the registry (topics/departments.yaml), e.g. WY."""

    name = "COUNTY"

    def convert(self, value, param, ctx):
        problem = unknown_county(value)
        if problem is None:
            return value
        self.fail(problem, param, ctx)


COUNTY = CountyCode()


def unknown_county(value: str) -> str | None:
    """Why `value` is no county of the registry (None: it is one)."""
    from topics.departments import counties

    known = counties()
    return None if value in known else f"no county {value!r} in the registry; the counties are {', '.join(known)}"


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
        if _answers(s.bootstrap):  # the broker is there: it refused who this client is, or how it talks
            raise click.ClickException(
                f"Kafka at {s.bootstrap} answers but did not let {_user()} in: check the credentials "
                "(GOVBUS_KAFKA_CONFIG, or GOVBUS_KAFKA_USERNAME and GOVBUS_KAFKA_PASSWORD; `govbus dept credentials` "
                "issues a department's, and a new password replaces the old one) and the TLS settings") from None
        raise click.ClickException(
            f"cannot reach Kafka at {s.bootstrap}: start the local stack with `govbus up` "
            "(or `make run`), or point GOVBUS_KAFKA_BOOTSTRAP at a running cluster") from None
    except OSError as exc:
        if "Connect call failed" not in str(exc):
            raise
        raise click.ClickException(f"{exc}: is the stack up? (`govbus up`)") from None


def refuse_before_sending(what: str, resource: str, check) -> dict | None:
    """What the catalog says against a command, said before anything is sent: `check(entry)` is the bus's own rule
    (a Refusal or None) on `resource`'s entry, as the catalog topic holds it now. Returns the entry when the rule
    lets the command go."""
    import difflib

    from ops.kafka_io import catalog_now

    entries = run(catalog_now())
    refusal = check(entries.get(resource))
    if refusal is None:
        return entries.get(resource)
    near = ""
    if refusal.code == "unknown_resource":
        codes = difflib.get_close_matches(resource, entries, n=3, cutoff=0.7)
        near = f"; did you mean {' or '.join(codes)}?" if codes else " (`govbus catalog list`)"
    rules = f" ({', '.join(refusal.rule_ids)})" if refusal.rule_ids else ""
    raise click.ClickException(f"{what}: {refusal.reason}{near}{rules}")


def _answers(bootstrap: str) -> bool:
    """Whether any of the bootstrap addresses takes a TCP connection."""
    import socket

    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            continue
    return False


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

    var, usual = METRICS_PORTS[process]
    port = int(os.environ.get(var, "0"))
    if not port:  # `govbus run` sets the variable; started alone, say so, or Prometheus waits in vain
        click.echo(f"{what}: no metrics served (set {var}, e.g. {usual}, for Prometheus to see it)", err=True)
        return
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
