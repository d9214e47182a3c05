"""The sharing agent: share requests, answers, revocations, disputes and rulings, judged by the rules in
streams/rules/sharing.py; approvals become directed authorizations on the grants topic."""

from __future__ import annotations

import logging
from datetime import date, datetime

from streams.agentstate import AgentState, serve_inbox
from streams.app import CODEC, DEPARTMENTS, PREFIX, app, calendar, catalog, topic
from streams.rules import sharing as rules
from streams.rules.deadlines import command_record, statutory_due
from streams.rules.refusals import Refusal
from topics import registry

log = logging.getLogger("govbus.sharing")

inbox_topic = topic(registry.SHARING_INBOX)
grants_topic = topic(registry.GRANTS)
decisions_topic = topic(registry.SHARING_DECISIONS)
deadline_commands_topic = topic(registry.DEADLINE_COMMANDS)
state = AgentState(app, "sharing_state", registry.name_of(registry.SHARING_STATE, PREFIX),
                   (grants_topic, decisions_topic, deadline_commands_topic))


def _decide(now: datetime, request_id: str, department: str, status: str, *, resource_code: str | None = None,
            reasons: list[str] = (), rule_ids: list[str] = (), problems: list[Refusal] = (),
            grant_id: str | None = None, due_on: str | None = None, event: str | None = None) -> None:
    rec = {"event_id": f"{request_id}:{event or status}", "occurred_at": now, "request_id": request_id,
           "department": department, "resource_code": resource_code, "status": status,
           "reasons": [*reasons, *(p.reason for p in problems)],
           "rule_ids": sorted(set(rule_ids) | {r for p in problems for r in p.rule_ids}),
           "grant_id": grant_id, "due_on": due_on}
    state.emit(decisions_topic, request_id.encode(), CODEC.encode("govbus.sharing.ShareDecision", rec))
    log.info("share %s of %s: %s %s", request_id, department, status, "; ".join(rec["reasons"]))


def _deadline(now: datetime, action: str, deadline_id: str, actor: str, **fields) -> None:
    rec = command_record(now, action, deadline_id, actor, **fields)
    state.emit(deadline_commands_topic, deadline_id.encode(), CODEC.encode("govbus.deadlines.DeadlineCommand", rec))


def _grant(grant_id: str) -> dict | None:
    grant = state.get(f"grant:{grant_id}")
    if grant is not None:  # the table holds JSON; the record wants its timestamp back
        grant["granted_at"] = datetime.fromisoformat(grant["granted_at"])
    return grant


def _publish_grant(grant: dict) -> None:
    state.put(f"grant:{grant['grant_id']}", grant)
    state.emit(grants_topic, grant["grant_id"].encode(), CODEC.encode("govbus.sharing.Grant", grant))


@app.agent(inbox_topic)
async def process_sharing(stream):
    """The sharing inbox, in order: each input to its handler below."""
    await serve_inbox(stream, state, HANDLERS, "sharing")


async def on_request(rec: dict, received_on: date, now: datetime) -> None:
    """A department asks for a conditional resource: checked, and its provider's answer is due (R-26.1)."""
    req_id, code = rec["event_id"], rec["resource_code"]
    entry = catalog.entries.get(code)
    problems = rules.check_request(rec, entry, DEPARTMENTS)
    if problems:
        _decide(now, req_id, rec["requester"], "rejected", resource_code=code, problems=problems)
        return
    provider = entry["entry"]["provider"]
    due = statutory_due("share_request", received_on, calendar)
    state.put(f"req:{req_id}", {"request": rec, "provider": provider, "status": "pending"})
    _decide(now, req_id, rec["requester"], "pending", resource_code=code, due_on=str(due),
            reasons=[f"awaiting the answer of {provider}, due {due}"], rule_ids=["R-26.1"])
    _deadline(now, "start", f"share_request:{req_id}", rec["requester"], case_type="share_request", case_id=req_id,
              party=provider, received_on=received_on.isoformat())


def _request(rec: dict, now: datetime, department: str, allowed: tuple[str, ...]) -> dict | None:
    req_id = rec["request_id"]
    req = state.get(f"req:{req_id}")
    refused = rules.check_request_state(req_id, req, allowed)
    if refused is not None:
        _decide(now, req_id, department, "rejected", event=f"rejected:{rec['event_id']}", problems=[refused])
        return None
    return req


async def on_answer(rec: dict, received_on: date, now: datetime) -> None:
    """The provider answers a pending request: a refusal with reason and basis, or a directed authorization."""
    req = _request(rec, now, rec["provider"], ("pending",))
    if req is None:
        return
    request, provider = req["request"], req["provider"]
    problems = rules.check_answer(rec, request, provider)
    if problems:
        _decide(now, rec["request_id"], rec["provider"], "rejected", event=f"rejected:{rec['event_id']}",
                resource_code=request["resource_code"], problems=problems)
        return
    _deadline(now, "answer", f"share_request:{rec['request_id']}", provider)
    if rec["decision"] == "refuse":
        state.put(f"req:{rec['request_id']}", {**req, "status": "refused", "answer": rec})
        _decide(now, rec["request_id"], request["requester"], "refused", resource_code=request["resource_code"],
                reasons=[f"refused by {provider} ({rec['person']}): {rec['reason']} (basis: {rec['basis']})"],
                rule_ids=["R-26.1"])
        return
    grant = rules.make_grant(request, rec["items"], provider, f"{provider} ({rec['person']})", now)
    _publish_grant(grant)
    state.put(f"req:{rec['request_id']}", {**req, "status": "approved", "grant_id": grant["grant_id"]})
    _decide(now, rec["request_id"], request["requester"], "approved", resource_code=request["resource_code"],
            grant_id=grant["grant_id"], rule_ids=["R-26.2"],
            reasons=[f"{request['requester']} may receive {', '.join(grant['items'])} of {request['resource_code']} "
                     f"for {grant['purpose']!r} from {grant['valid_from']} to {grant['valid_until']}"])


async def on_revocation(rec: dict, received_on: date, now: datetime) -> None:
    """The provider revokes a directed authorization (R-26.2)."""
    grant = _grant(rec["grant_id"])
    request_id = grant["request_id"] if grant else rec["grant_id"]
    refused = rules.check_revocation(rec, grant)
    if refused is not None:
        _decide(now, request_id, rec["by"], "rejected", event=f"rejected:{rec['event_id']}", problems=[refused])
        return
    _publish_grant(rules.revoke(grant, rec))
    _decide(now, request_id, grant["grantee"], "revoked", resource_code=grant["resource_code"],
            grant_id=grant["grant_id"], reasons=[f"revoked by {rec['by']}: {rec['reason']}"], rule_ids=["R-26.2"])


async def on_dispute(rec: dict, received_on: date, now: datetime) -> None:
    """A party disputes a share decision; the provider's authority decides (R-25.1)."""
    req = _request(rec, now, rec["by"], ("refused", "pending"))
    if req is None:
        return
    request = req["request"]
    refused = rules.check_dispute(rec, req)
    if refused is not None:
        _decide(now, rec["request_id"], rec["by"], "rejected", event=f"rejected:{rec['event_id']}",
                problems=[refused])
        return
    authority = rules.authority_for(DEPARTMENTS[req["provider"]], DEPARTMENTS)
    state.put(f"req:{rec['request_id']}", {**req, "status": "disputed", "authority": authority})
    _decide(now, rec["request_id"], request["requester"], "disputed", resource_code=request["resource_code"],
            reasons=[f"disputed by {rec['by']}: {rec['reason']}; {authority} decides, and its ruling binds"],
            rule_ids=["R-25.1"])


async def on_ruling(rec: dict, received_on: date, now: datetime) -> None:
    """The authority rules on a dispute; its ruling binds, an overturned refusal becomes a grant (R-25.1)."""
    req = _request(rec, now, rec["authority"], ("disputed",))
    if req is None:
        return
    request = req["request"]
    refused = rules.check_ruling(rec, req)
    if refused is not None:
        _decide(now, rec["request_id"], rec["authority"], "rejected", event=f"rejected:{rec['event_id']}",
                problems=[refused])
        return
    if rec["ruling"] == "uphold":
        state.put(f"req:{rec['request_id']}", {**req, "status": "upheld"})
        _decide(now, rec["request_id"], request["requester"], "upheld", resource_code=request["resource_code"],
                reasons=[f"{rec['authority']} ({rec['person']}) upholds the refusal: {rec['reason']}"],
                rule_ids=["R-25.1"])
        return
    grant = rules.make_grant(request, (), req["provider"], f"{rec['authority']} ({rec['person']})", now)
    _publish_grant(grant)
    state.put(f"req:{rec['request_id']}", {**req, "status": "overturned", "grant_id": grant["grant_id"]})
    _deadline(now, "answer", f"share_request:{rec['request_id']}", rec["authority"])
    _decide(now, rec["request_id"], request["requester"], "overturned", resource_code=request["resource_code"],
            grant_id=grant["grant_id"], rule_ids=["R-25.1", "R-26.2"],
            reasons=[f"{rec['authority']} ({rec['person']}) grants the request: {rec['reason']}"])


HANDLERS = {
    "govbus.sharing.ShareRequest": on_request,
    "govbus.sharing.ShareAnswer": on_answer,
    "govbus.sharing.GrantRevocation": on_revocation,
    "govbus.sharing.Dispute": on_dispute,
    "govbus.sharing.DisputeRuling": on_ruling,
}
