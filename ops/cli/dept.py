"""`govbus dept credentials` and `govbus acls`: the departments' and the bus processes' principals on the broker,
and the ACLs the registry gives them."""

from __future__ import annotations

import click

from ops.cli import common
from topics.settings import settings

FORMATS = ("librdkafka", "java")


def write_credentials(name: str, out: str, fmt: str) -> None:
    """A new password for principal `name` (the previous one stops working), written as a client properties file
    only its owner reads."""
    from dataclasses import replace
    from pathlib import Path

    from ops.stack import java_properties, librdkafka_properties, write_secret
    from topics.access import issue_passwords

    s = settings()
    password = common.run(issue_passwords(s, [name]))[name]
    protocol = s.kafka_security.protocol if s.kafka_security.protocol != "PLAINTEXT" else "SASL_PLAINTEXT"
    sec = replace(s.kafka_security, protocol=protocol, username=name, password=password)
    write = java_properties if fmt == "java" else librdkafka_properties
    write_secret(Path(out), write(s.bootstrap, sec))


@click.group()
def dept() -> None:
    """Departments as principals of the broker."""


@dept.command("credentials")
@click.argument("department", type=common.DEPARTMENT)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The client properties file to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="librdkafka", show_default=True,
              help="librdkafka (kcat -F FILE, confluent-kafka) or java (any Kafka Java client, kafka-*.sh "
                   "--command-config).")
def dept_credentials(department: str, out: str, fmt: str) -> None:
    """Issue DEPARTMENT a new password and write its client properties to --out.

    The department's previous password stops working at once: this is also how credentials are rotated.
    Hand the file over as a secret; govbus keeps no copy of the password."""
    from topics.acls import department_principal

    name = department_principal(department, settings().topic_prefix)
    write_credentials(name, out, fmt)
    click.echo(f"{out}: credentials of {name} ({fmt}); its previous password no longer works")


@click.group()
def acls() -> None:
    """The broker's ACLs, derived from the department registry."""


def print_acl_report(report) -> None:
    for acl in report.created:
        click.echo(f"created   {acl}")
    for acl in report.deleted:
        click.echo(f"removed   {acl}")
    for name in report.principals_removed:
        click.echo(f"removed   credentials of {name} (not in the registry)")
    click.echo(f"unchanged {report.unchanged} ACLs")


@acls.command("apply")
def acls_apply() -> None:
    """Create the ACLs the registry gives, remove what a department or process holds beyond them (everything, for
    a department no longer in the registry); safe to re-run."""
    from topics.access import apply_acls

    print_acl_report(common.run(apply_acls(settings())))


@acls.command("list")
@click.option("--principal", default=None, help="Only this principal's, e.g. NJ-YB.")
def acls_list(principal: str | None) -> None:
    """The ACLs the registry gives, one a line."""
    from topics.acls import wanted_acls
    from topics.departments import load

    acls = sorted(wanted_acls(load(), settings().topic_prefix))
    shown = [a for a in acls if principal is None or a.principal == f"User:{principal}"]
    if principal is not None and not shown:  # no such principal: not an empty list of its rights
        import difflib

        names = sorted({a.principal.removeprefix("User:") for a in acls})
        near = difflib.get_close_matches(principal, names, n=3, cutoff=0.6)
        raise click.ClickException(
            f"the registry gives no principal {principal!r} any ACL: the principals are the department codes of "
            "topics/departments.yaml and the bus processes' (govbus-worker, govbus-ledger, govbus-deadlines); "
            "a registered party's are granted when its credentials are issued"
            + (f"; did you mean {' or '.join(near)}?" if near else ""))
    for acl in shown:
        click.echo(str(acl))


@acls.command("credentials")
@click.argument("process", type=click.Choice(["worker", "ledger", "deadlines"]))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The client properties file to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="java", show_default=True)
def acls_credentials(process: str, out: str, fmt: str) -> None:
    """Issue a bus process (on a production cluster) a new password and write its client properties to --out;
    point its GOVBUS_KAFKA_CONFIG (or GOVBUS_<PROCESS>_KAFKA_CONFIG for `govbus run`) at it."""
    from topics.acls import process_principal

    name = process_principal(process, settings().topic_prefix)
    write_credentials(name, out, fmt)
    click.echo(f"{out}: credentials of {name} ({fmt}); its previous password no longer works")
