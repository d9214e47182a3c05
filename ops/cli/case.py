"""`govbus party ...` and `govbus case ...`: citizens' and departments' cases (verification, objections, open
requests) as requesters, providers and the authority use them."""

from __future__ import annotations

import sys

import click

from ops import events
from ops.cli import common
from ops.display import print_case_events
from topics.settings import settings

OPENING = "govbus.cases.CaseOpening"
STEP = "govbus.cases.CaseStep"


def _send(schema: str, rec: dict, case_id: str, wait: float) -> None:
    """Send one case input, print what became of it, exit 1 if nothing did or it was refused."""
    from ops.kafka_io import send_case

    answers = common.run(send_case(schema, rec, case_id, wait))
    print_case_events(answers)
    if not answers:
        raise click.ClickException(f"no answer from the bus within {wait:g} s; `govbus case show {case_id}` tells "
                                   "what became of it once the workers run")
    if any(a["step"] == "refused" for a in answers):
        sys.exit(1)


@click.group()
def party() -> None:
    """Residents, companies and research bodies that meet the bus: registered by their identifier."""


@party.command("register")
@click.argument("party_id")
@click.option("--name", required=True)
@click.option("--by", "registered_by", default="portal", show_default=True,
              help="Who checked the identity: the portal or an office.")
@click.option("--wait", type=float, default=20.0, show_default=True)
def party_register(party_id: str, name: str, registered_by: str, wait: float) -> None:
    """Register PARTY_ID (a resident identity number or a unified social credit code)."""
    rec = events.party_registration(party_id, name, registered_by)
    _send("govbus.cases.PartyRegistration", rec, f"party:{party_id}", wait)


@party.command("credentials")
@click.argument("party_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The client properties file to write.")
@click.option("--format", "fmt", type=click.Choice(("librdkafka", "java")), default="librdkafka", show_default=True,
              help="librdkafka (kcat -F FILE, confluent-kafka) or java (any Kafka Java client).")
@click.option("--by", "issued_by", default="portal", show_default=True,
              help="Who issued them: the portal or an office.")
@click.option("--wait", type=float, default=20.0, show_default=True)
def party_credentials(party_id: str, out: str, fmt: str, issued_by: str, wait: float) -> None:
    """Issue a registered PARTY_ID its broker credentials and its open feed, and write its client properties to --out.

    The party may then read the unconditionally open data and, once an open request of its is approved, its own
    feed of conditionally open data (`govbus open feed tail PARTY_ID`, or consumers.open_feed.OpenFeed). Running it
    again rotates the password: the previous one stops working at once."""
    from ops.cli.dept import write_credentials
    from topics import registry
    from topics.access import grant_acls
    from topics.acls import party_acls, party_principal
    from topics.admin import apply_topics
    from topics.views import snapshot

    s = settings()
    parties = common.run(snapshot(s.bootstrap, registry.name_of(registry.PARTIES, s.topic_prefix)))
    if party_id.encode() not in parties:
        raise click.ClickException(f"{party_id} is not a registered party: `govbus party register {party_id} "
                                   "--name NAME` first")
    common.run(apply_topics(s, [registry.open_party_feed(party_id)]))
    common.run(grant_acls(s, party_acls(party_id, s.topic_prefix)))
    name = party_principal(party_id, s.topic_prefix)
    write_credentials(name, out, fmt)
    click.echo(f"{out}: credentials of {name} ({fmt}); its previous password, if any, no longer works")
    _send("govbus.cases.PartyCredentials", events.party_credentials(party_id, issued_by), f"party:{party_id}", wait)


@click.group()
def case() -> None:
    """Verifications (R-19.1), objections (R-41.1), objections to the open catalog (R-31.1) and open requests
    (R-32.1), each with its statutory deadlines."""


def _opening(case_type: str, requester: str, resource_code: str, reason: str, wait: float, **fields) -> None:
    rec = events.case_opening(case_type, requester, resource_code, reason, **fields)
    _send(OPENING, rec, rec["event_id"], wait)


def _requester(f):
    f = click.option("--as", "requester", required=True,
                     help="A department code, or a registered party's identity number or credit code.")(f)
    f = click.option("--person", default=None, help="Who acts for the requester.")(f)
    return click.option("--wait", type=float, default=20.0, show_default=True)(f)


@case.command()
@click.argument("resource_code")
@click.argument("subject_id")
@click.option("--items", required=True, help="Comma-separated data items to verify.")
@click.option("--reason", required=True, help="What looks wrong.")
@_requester
def verify(resource_code: str, subject_id: str, items: str, reason: str, requester: str, person: str | None,
           wait: float) -> None:
    """Ask the provider to verify a datum (校核); it answers within 10 working days (R-19.1)."""
    _opening("verification", requester, resource_code, reason, wait, subject_id=subject_id,
             items=common.split_list(items), person=person)


@case.command("object")
@click.argument("resource_code")
@click.argument("subject_id")
@click.option("--items", required=True, help="Comma-separated data items objected to.")
@click.option("--reason", required=True)
@_requester
def object_(resource_code: str, subject_id: str, items: str, reason: str, requester: str, person: str | None,
            wait: float) -> None:
    """Object to a datum (异议); the authority marks it within 3 working days (R-41.1)."""
    _opening("objection", requester, resource_code, reason, wait, subject_id=subject_id,
             items=common.split_list(items), person=person)


@case.command("open-request")
@click.argument("resource_code")
@click.option("--items", required=True, help="Comma-separated data items wanted.")
@click.option("--purpose", "reason", required=True)
@click.option("--use", type=click.Choice(["public_interest_research", "commercial"]), required=True)
@click.option("--award", default=None, help="Commercial use: the competitive award it rests on.")
@_requester
def open_request(resource_code: str, items: str, reason: str, use: str, award: str | None, requester: str,
                 person: str | None, wait: float) -> None:
    """Request conditionally open data; the provider answers within 15 working days (R-32.1)."""
    _opening("open_request", requester, resource_code, reason, wait, items=common.split_list(items), use=use,
             award=award, person=person)


@case.command("open-objection")
@click.argument("resource_code")
@click.option("--reason", required=True)
@_requester
def open_objection(resource_code: str, reason: str, requester: str, person: str | None, wait: float) -> None:
    """Object to the open catalog's entry of a resource; the provider answers within 10 working days (R-31.1)."""
    _opening("open_catalog_objection", requester, resource_code, reason, wait, person=person)


def _actor(f):
    f = click.option("--as", "actor", required=True, help="The department that acts.")(f)
    f = click.option("--person", required=True, help="Who acts for it.")(f)
    return click.option("--wait", type=float, default=20.0, show_default=True)(f)


def _step(case_id: str, action: str, actor: str, person: str, wait: float, **fields) -> None:
    _send(STEP, events.case_step(case_id, action, actor, person, **fields), case_id, wait)


@case.command()
@click.argument("case_id")
@click.option("--own", is_flag=True, help="The datum is the authority's to correct: it decides within 10 working "
              "days instead of forwarding within 5.")
@_actor
def mark(case_id: str, own: bool, actor: str, person: str, wait: float) -> None:
    """The authority marks the objected datum (R-41.1)."""
    _step(case_id, "mark", actor, person, wait, outcome="own" if own else "forward")


@case.command()
@click.argument("case_id")
@click.option("--to", "to_department", default=None, help="The department that decides (default: the provider).")
@_actor
def forward(case_id: str, to_department: str | None, actor: str, person: str, wait: float) -> None:
    """The authority forwards a marked objection; the department decides within 5 working days (R-41.1)."""
    _step(case_id, "forward", actor, person, wait, to_department=to_department)


OUTCOME_CHOICES = ["confirmed", "corrected", "accepted", "rejected", "approved", "refused"]


@case.command()
@click.argument("case_id")
@click.option("--outcome", type=click.Choice(OUTCOME_CHOICES), required=True,
              help="verification: confirmed | corrected; open catalog objection: accepted | rejected; "
                   "open request: approved | refused.")
@click.option("--reason", default=None)
@click.option("--basis", default=None, help="The basis of a refusal.")
@_actor
def answer(case_id: str, outcome: str, reason: str | None, basis: str | None, actor: str, person: str,
           wait: float) -> None:
    """The provider answers a verification, an objection to the open catalog or an open request."""
    _step(case_id, "answer", actor, person, wait, outcome=outcome, reason=reason, basis=basis)


@case.command()
@click.argument("case_id")
@click.option("--outcome", type=click.Choice(["confirmed", "corrected"]), required=True)
@click.option("--reason", required=True)
@_actor
def decide(case_id: str, outcome: str, reason: str, actor: str, person: str, wait: float) -> None:
    """Decide an objection: the authority in its own scope, or the department it was forwarded to (R-41.1)."""
    _step(case_id, "decide", actor, person, wait, outcome=outcome, reason=reason)


@case.command()
@click.argument("case_id")
@click.option("--days", type=int, required=True)
@click.option("--approved-by", required=True, help="The principal head of the department that must act (R-7.1).")
@_actor
def extend(case_id: str, days: int, approved_by: str, actor: str, person: str, wait: float) -> None:
    """Extend a case's deadline once, with the head's approval (R-19.1, R-31.1, R-32.1)."""
    _step(case_id, "extend", actor, person, wait, extension_days=days, approved_by=approved_by)


def _read() -> tuple[list[dict], dict[str, dict]]:
    from ops.kafka_io import case_events, deadline_states

    s = settings()

    async def both():
        return await case_events(s.bootstrap, s.topic_prefix), await deadline_states(s.bootstrap, s.topic_prefix)

    found, states = common.run(both())
    return found, {d["deadline_id"]: d for d in states}


def _deadline_line(d: dict) -> str:
    state = ("answered" if d["closed"] and not d["breached"] else "answered late" if d["closed"]
             else "BREACHED" if d["breached"] else "open")
    extended = f", extended by {d['extension_approved_by']} (+{d['extended_by']})" if d["extended_by"] else ""
    return f"{d['deadline_id']}: {d['party']} by {d['due_on']}{' provisional' if d['provisional'] else ''}" \
           f" {state}{extended}"


@case.command()
@click.argument("case_id")
def show(case_id: str) -> None:
    """Every step of a case, who acted, each deadline and its state."""
    found, states = _read()
    steps = [e for e in found if e["case_id"] == case_id]
    if not steps:
        raise click.ClickException(f"there is no case {case_id}")
    print_case_events(steps)
    ids = sorted({e["deadline_id"] for e in steps if e["deadline_id"]})
    if ids:
        click.echo("deadlines:")
        for i in ids:
            click.echo(f"    {_deadline_line(states[i])}" if i in states else f"    {i}: not yet started")
    sent = sorted({r for e in steps if e["step"] == "correction_sent" for r in e["recipients"]})
    owed = sorted({r for e in steps if e["step"] in ("answered", "decided") for r in e["recipients"]})
    if owed:
        click.echo(f"correction owed to: {', '.join(owed)}")
        click.echo(f"correction sent to: {', '.join(sent) or 'nobody yet (the provider republishes the datum)'}")


@case.command("list")
@click.option("--party", default=None, help="Cases a department or party requested or must act on.")
@click.option("--overdue", is_flag=True, help="Only cases with a breached deadline still open.")
def list_(party: str | None, overdue: bool) -> None:
    """The cases, one line each: type, status, requester, who must act next and by when."""
    found, states = _read()
    latest: dict[str, dict] = {}
    involved: dict[str, set[str]] = {}
    for e in found:
        if e["case_type"] is None:  # a registration, or a refused opening
            continue
        involved.setdefault(e["case_id"], set()).update(x for x in (e["requester"], e["actor"], e["party"]) if x)
        if e["step"] != "refused":
            latest[e["case_id"]] = e
    shown = 0
    for case_id, e in latest.items():
        d = states.get(e["deadline_id"] or "")
        late = bool(d and d["breached"] and not d["closed"])
        if (party and party not in involved[case_id]) or (overdue and not late):
            continue
        due = f"  {e['party']} by {e['due_on']}{' OVERDUE' if late else ''}" if d and not d["closed"] else ""
        click.echo(f"{case_id}  {e['case_type']}  {e['status']}  {e['requester']}  {e['resource_code']}{due}")
        shown += 1
    if not shown:
        click.echo("no cases" + (" overdue" if overdue else "") + (f" of {party}" if party else ""))
