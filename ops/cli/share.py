"""`govbus share ...` and `govbus alerts`: directed authorizations as departments and the authority use them."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import click

from ops import events
from ops.cli import common
from ops.display import print_share_decisions, when
from topics.settings import settings


def _send(schema: str, rec: dict, request_id: str, wait: float) -> None:
    """Send one sharing event, print the decision on its request and exit 1 if there is none or a rejection."""
    from ops.kafka_io import send_share

    decisions = common.run(send_share(schema, rec, request_id, wait))
    print_share_decisions(decisions)
    if not decisions or any(d["status"] == "rejected" for d in decisions):
        sys.exit(1)


@click.group()
def share() -> None:
    """Share requests and directed authorizations (Ch. 4 of the measures)."""


@share.command()
@click.argument("resource_code")
@click.option("--as", "requester", required=True, type=common.DEPARTMENT)
@click.option("--purpose", required=True, help="What the data is for (R-26.1).")
@click.option("--items", required=True, help="Comma-separated data items wanted.")
@click.option("--subjects", default=None, help="Comma-separated subject ids, if limited.")
@click.option("--from", "valid_from", default=None, help="Start of validity (default today).")
@click.option("--until", "valid_until", default=None, help="End of validity (default one year).")
@click.option("--wait", type=float, default=20.0, show_default=True)
def request(resource_code: str, requester: str, purpose: str, items: str, subjects: str | None,
            valid_from: str | None, valid_until: str | None, wait: float) -> None:
    """Ask for a conditional resource; the provider answers within 10 working days."""
    start = common.date_option(valid_from, "--from") if valid_from is not None else date.today()
    end = common.date_option(valid_until, "--until") if valid_until is not None else None
    if end is None:
        try:
            end = start + timedelta(days=365)
        except OverflowError:
            raise click.ClickException(f"a validity of one year from {start} ends after {date.max}: "
                                       "give --until") from None
    rec = events.share_request(requester, resource_code, purpose, common.split_list(items),
                               common.split_list(subjects), start, end)
    _send("govbus.sharing.ShareRequest", rec, rec["event_id"], wait)


@share.command()
@click.argument("request_id")
@click.option("--as", "provider", required=True, type=common.DEPARTMENT)
@click.option("--person", required=True, help="Who answers for the provider.")
@click.option("--approve", "decision", flag_value="approve")
@click.option("--refuse", "decision", flag_value="refuse")
@click.option("--items", default=None, help="Approve fewer items than requested (comma-separated).")
@click.option("--reason", default=None)
@click.option("--basis", default=None, help="Legal or policy basis of a refusal (R-26.1).")
@click.option("--wait", type=float, default=20.0, show_default=True)
def answer(request_id: str, provider: str, person: str, decision: str | None, items: str | None,
           reason: str | None, basis: str | None, wait: float) -> None:
    """Approve (a directed authorization) or refuse with reason and basis."""
    if decision is None:
        raise click.UsageError("say --approve or --refuse")
    rec = events.share_answer(request_id, provider, person, decision, reason, basis, common.split_list(items))
    _send("govbus.sharing.ShareAnswer", rec, request_id, wait)


@share.command()
@click.argument("grant_id")
@click.option("--as", "by", required=True, type=common.DEPARTMENT)
@click.option("--person", required=True)
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def revoke(grant_id: str, by: str, person: str, reason: str, wait: float) -> None:
    """End a directed authorization; the very next delivery already goes without it."""
    rec = events.grant_revocation(grant_id, by, person, reason)
    _send("govbus.sharing.GrantRevocation", rec, grant_id.removeprefix("grant:"), wait)


@share.command()
@click.argument("request_id")
@click.option("--as", "by", required=True, type=common.DEPARTMENT)
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def dispute(request_id: str, by: str, reason: str, wait: float) -> None:
    """Take a share decision to the authority (R-25.1)."""
    _send("govbus.sharing.Dispute", events.dispute(request_id, by, reason), request_id, wait)


@share.command()
@click.argument("request_id")
@click.option("--as", "authority", required=True, type=common.DEPARTMENT)
@click.option("--person", required=True)
@click.option("--uphold", "ruling", flag_value="uphold")
@click.option("--overturn", "ruling", flag_value="overturn")
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def rule(request_id: str, authority: str, person: str, ruling: str | None, reason: str, wait: float) -> None:
    """The authority's binding ruling on a dispute."""
    if ruling is None:
        raise click.UsageError("say --uphold or --overturn")
    rec = events.dispute_ruling(request_id, authority, person, ruling, reason)
    _send("govbus.sharing.DisputeRuling", rec, request_id, wait)


@share.command()
@click.option("--grantee", default=None, type=common.DEPARTMENT)
def grants(grantee: str | None) -> None:
    """Directed authorizations, from the ledger."""
    from consumers import queries

    for g in common.run(queries.grants(settings().dsn, grantee)):
        state = "REVOKED" if g["revoked"] else f"{g['valid_from']}..{g['valid_until']}"
        subjects = f" subjects={len(g['subjects'])}" if g["subjects"] else ""
        click.echo(f"{g['grant_id']}  {g['provider']} -> {g['grantee']}  {g['resource_code']} "
                   f"[{', '.join(g['items'])}]{subjects}  {state}  purpose: {g['purpose']}")


@click.command()
@click.option("--department", default=None, type=common.DEPARTMENT)
def alerts(department: str | None) -> None:
    """One-source violations, duplicate collection and republication, with subjects counted (R-45.1)."""
    from consumers.queries import alert_summary

    rows = common.run(alert_summary(settings().dsn, department))
    if not rows:
        click.echo("no alerts recorded" + (f" about {department}" if department else ""))
    for a in rows:
        click.echo(f"{when(a['last_seen'])} {a['kind']:22} {a['department']:8} "
                   f"source={a['source_department'] or '-':8} system={a['system_code'] or '-'} "
                   f"subjects={a['subjects_count']} [{', '.join(a['rule_ids'])}] {a['message']}")
