"""`govbus share ...` and `govbus alerts`: directed authorizations as departments and the authority use them."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, date, datetime, timedelta

import click

from topics.settings import settings

DECISION = "govbus.sharing.ShareDecision"


def _run(coro):
    from ops.cli import _run as run

    return run(coro)


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _day(value: str, option: str) -> date:
    """A date given as YYYY-MM-DD, exactly as the bus carries it."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or day.isoformat() != value:
        raise click.ClickException(f"{option} {value!r} is not a date of the form YYYY-MM-DD")
    return day


async def send_share(schema: str, rec: dict, request_id: str, wait: float) -> list[dict]:
    """Send one sharing event and wait for the decision on the request it concerns."""
    from ops.kafka_io import send_and_wait
    from topics.registry import SHARING_DECISIONS, SHARING_INBOX

    return await send_and_wait(SHARING_INBOX, [(request_id.encode(), schema, rec)], SHARING_DECISIONS, DECISION,
                               lambda d: d["request_id"] == request_id and d["occurred_at"] >= rec["occurred_at"]
                               - timedelta(seconds=5), bool, wait)


def _print(decisions: list[dict]) -> None:
    for d in decisions:
        rules = f" [{', '.join(d['rule_ids'])}]" if d["rule_ids"] else ""
        grant = f" grant={d['grant_id']}" if d["grant_id"] else ""
        click.echo(f"{d['request_id']}  {d['resource_code'] or '-'}  {d['status']}{grant}{rules}")
        for r in d["reasons"]:
            click.echo(f"    {r}")
    if not decisions:
        click.echo("no answer yet: is a worker running?", err=True)


def _finish(decisions: list[dict]) -> None:
    _print(decisions)
    if not decisions or any(d["status"] == "rejected" for d in decisions):
        sys.exit(1)


def _now() -> datetime:
    return datetime.now(UTC)


@click.group()
def share() -> None:
    """Share requests and directed authorizations (Ch. 4 of the measures)."""


@share.command()
@click.argument("resource_code")
@click.option("--as", "requester", required=True)
@click.option("--purpose", required=True, help="What the data is for (R-26.1).")
@click.option("--items", required=True, help="Comma-separated data items wanted.")
@click.option("--subjects", default=None, help="Comma-separated subject ids, if limited.")
@click.option("--from", "valid_from", default=None, help="Start of validity (default today).")
@click.option("--until", "valid_until", default=None, help="End of validity (default one year).")
@click.option("--wait", type=float, default=20.0, show_default=True)
def request(resource_code: str, requester: str, purpose: str, items: str, subjects: str | None,
            valid_from: str | None, valid_until: str | None, wait: float) -> None:
    """Ask for a conditional resource; the provider answers within 10 working days."""
    start = _day(valid_from, "--from") if valid_from is not None else date.today()
    end = _day(valid_until, "--until") if valid_until is not None else None
    if end is None:
        try:
            end = start + timedelta(days=365)
        except OverflowError:
            raise click.ClickException(f"a validity of one year from {start} ends after {date.max}: "
                                       "give --until") from None
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": _now(), "requester": requester,
           "resource_code": resource_code, "purpose": purpose, "items": _list(items), "subjects": _list(subjects),
           "valid_from": start.isoformat(), "valid_until": end.isoformat()}
    _finish(_run(send_share("govbus.sharing.ShareRequest", rec, rec["event_id"], wait)))


@share.command()
@click.argument("request_id")
@click.option("--as", "provider", required=True)
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
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": _now(), "request_id": request_id, "provider": provider,
           "person": person, "decision": decision, "reason": reason, "basis": basis, "items": _list(items)}
    _finish(_run(send_share("govbus.sharing.ShareAnswer", rec, request_id, wait)))


@share.command()
@click.argument("grant_id")
@click.option("--as", "by", required=True)
@click.option("--person", required=True)
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def revoke(grant_id: str, by: str, person: str, reason: str, wait: float) -> None:
    """End a directed authorization; the very next delivery already goes without it."""
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": _now(), "grant_id": grant_id, "by": by, "person": person,
           "reason": reason}
    request_id = grant_id.removeprefix("grant:")
    _finish(_run(send_share("govbus.sharing.GrantRevocation", rec, request_id, wait)))


@share.command()
@click.argument("request_id")
@click.option("--as", "by", required=True)
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def dispute(request_id: str, by: str, reason: str, wait: float) -> None:
    """Take a share decision to the authority (R-25.1)."""
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": _now(), "request_id": request_id, "by": by, "reason": reason}
    _finish(_run(send_share("govbus.sharing.Dispute", rec, request_id, wait)))


@share.command()
@click.argument("request_id")
@click.option("--as", "authority", required=True)
@click.option("--person", required=True)
@click.option("--uphold", "ruling", flag_value="uphold")
@click.option("--overturn", "ruling", flag_value="overturn")
@click.option("--reason", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def rule(request_id: str, authority: str, person: str, ruling: str | None, reason: str, wait: float) -> None:
    """The authority's binding ruling on a dispute."""
    if ruling is None:
        raise click.UsageError("say --uphold or --overturn")
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": _now(), "request_id": request_id, "authority": authority,
           "person": person, "ruling": ruling, "reason": reason}
    _finish(_run(send_share("govbus.sharing.DisputeRuling", rec, request_id, wait)))


async def _fetch(sql: str, *args) -> list:
    from ops.db import fetch

    return await fetch(settings().dsn, sql, *args)


@share.command()
@click.option("--grantee", default=None)
def grants(grantee: str | None) -> None:
    """Directed authorizations, from the ledger."""
    rows = _run(_fetch("SELECT * FROM grants WHERE ($1::text IS NULL OR grantee = $1) ORDER BY granted_at", grantee))
    for g in rows:
        state = "REVOKED" if g["revoked"] else f"{g['valid_from']}..{g['valid_until']}"
        subjects = f" subjects={len(g['subjects'])}" if g["subjects"] else ""
        click.echo(f"{g['grant_id']}  {g['provider']} -> {g['grantee']}  {g['resource_code']} "
                   f"[{', '.join(g['items'])}]{subjects}  {state}  purpose: {g['purpose']}")


@click.command()
@click.option("--department", default=None)
def alerts(department: str | None) -> None:
    """One-source violations, duplicate collection and republication, with subjects counted (R-45.1)."""
    rows = _run(_fetch("SELECT * FROM alert_summary WHERE ($1::text IS NULL OR department = $1)"
                       " ORDER BY last_seen DESC", department))
    for a in rows:
        click.echo(f"{a['last_seen']:%Y-%m-%d %H:%M} {a['kind']:22} {a['department']:8} "
                   f"source={a['source_department'] or '-':8} system={a['system_code'] or '-'} "
                   f"subjects={a['subjects_count']} [{', '.join(a['rule_ids'])}] {a['message']}")
