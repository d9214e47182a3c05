"""Rules of sharing (Ch. 4 of the measures) as pure functions: share requests, answers,
directed authorizations (grants), revocations and disputes, and who receives a delivery in
which scope."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from streams.rules.refusals import Refusal
from topics.departments import Department


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _iso(value: str, what: str, problems: list[Refusal]) -> date | None:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        problems.append(Refusal(f"{what} {value!r} is not a date YYYY-MM-DD", ("R-26.2",)))
        return None


def entry_items(entry: Mapping[str, Any]) -> list[str]:
    """The data items a catalog entry lists, without its subject identifier item."""
    return [i["name"] for i in entry["entry"]["data_items"] if not i.get("subject_id")]


def check_request(req: Mapping[str, Any], entry: Mapping[str, Any] | None,
                  departments: Mapping[str, Department]) -> list[Refusal]:
    problems: list[Refusal] = []
    if req["requester"] not in departments:
        problems.append(Refusal(f"{req['requester']} is not a department registered on the bus", ("R-26.1",)))
    if entry is None:
        problems.append(Refusal(f"{req['resource_code']} is not in the approved catalog: nothing is shared for "
                                "a resource that is not catalogued", ("R-10.1",)))
        return problems
    content = entry["entry"]
    attribute = content["share_attribute"]
    if attribute == "unconditional":
        problems.append(Refusal(f"{req['resource_code']} is shared unconditionally: subscribe to it "
                                "(`govbus subscribe`), no request is needed", ("R-27.1",)))
    elif attribute == "none":
        problems.append(Refusal(f"{req['resource_code']} is not shared ({content.get('share_basis')}); "
                                "a dispute about its attribute goes to the authority", ("R-23.1", "R-25.1")))
    if req["requester"] == content["provider"]:
        problems.append(Refusal("a provider does not request its own resource", ("R-26.1",)))
    if _blank(req["purpose"]):
        problems.append(Refusal("a share request states its purpose", ("R-26.1",)))
    if not req["items"]:
        problems.append(Refusal("a share request names the data items it wants", ("R-26.1",)))
    unknown = sorted(set(req["items"]) - set(entry_items(entry)))
    if unknown:
        problems.append(Refusal(f"{', '.join(unknown)} are not data items of {req['resource_code']}; it has "
                                f"{', '.join(entry_items(entry))}", ("R-26.1",)))
    start = _iso(req["valid_from"], "valid_from", problems)
    end = _iso(req["valid_until"], "valid_until", problems)
    if start and end and end < start:
        problems.append(Refusal(f"the validity ends ({end}) before it starts ({start})", ("R-26.2",)))
    return problems


def check_subscription(resource_code: str, entry: Mapping[str, Any] | None, subscriber: str) -> Refusal | None:
    """R-27.1: a subscription receives a resource shared unconditionally; one shared on conditions goes only to the
    holders of a directed authorization (R-26.1), one not shared to nobody (R-23.1). None: nothing against it."""
    if entry is None:
        return Refusal(f"{resource_code} is not in the approved catalog: nothing is shared for a resource that is not "
                       "catalogued", ("R-10.1",), code="unknown_resource")
    content = entry["entry"]
    if content["share_attribute"] == "conditional":
        return Refusal(f"{resource_code} is shared on conditions: {subscriber} receives it under a directed "
                       f"authorization, asked for with `govbus share request {resource_code} --as {subscriber} "
                       "--purpose ... --items ...`", ("R-26.1",))
    if content["share_attribute"] == "none":
        return Refusal(f"{resource_code} is not shared ({content.get('share_basis')}): no subscription receives it",
                       ("R-23.1",))
    return None


def check_answer(answer: Mapping[str, Any], request: Mapping[str, Any], provider: str) -> list[Refusal]:
    problems: list[Refusal] = []
    if answer["provider"] != provider:
        problems.append(Refusal(f"only the provider {provider} answers a request for its resource, "
                                f"not {answer['provider']}", ("R-26.1",)))
    if answer["decision"] not in ("approve", "refuse"):
        problems.append(Refusal(f"decision {answer['decision']!r} is neither approve nor refuse", ("R-26.1",)))
    if answer["decision"] == "refuse" and (_blank(answer.get("reason")) or _blank(answer.get("basis"))):
        problems.append(Refusal("a refusal gives its reason and its basis", ("R-26.1",)))
    extra = sorted(set(answer.get("items") or ()) - set(request["items"]))
    if extra:
        problems.append(Refusal(f"an approval cannot add items that were not requested: {', '.join(extra)}",
                                ("R-26.2",)))
    return problems


def make_grant(request: Mapping[str, Any], answer_items: Iterable[str], provider: str, granted_by: str,
               granted_at: Any) -> dict[str, Any]:
    """The directed authorization of an approved request: that requester, that scope, that purpose."""
    items = sorted(answer_items or request["items"])
    return {
        "grant_id": f"grant:{request['event_id']}", "grantee": request["requester"], "provider": provider,
        "resource_code": request["resource_code"], "items": items, "subjects": sorted(request["subjects"]),
        "purpose": request["purpose"], "valid_from": request["valid_from"], "valid_until": request["valid_until"],
        "revoked": False, "revoked_reason": None, "granted_by": granted_by, "request_id": request["event_id"],
        "granted_at": granted_at,
    }


def authority_for(provider: Department, departments: Mapping[str, Department]) -> str:
    from streams.rules.catalog import reviewer_for

    return reviewer_for(provider, departments)


def grant_valid(grant: Mapping[str, Any], subject_id: str, on: date) -> bool:
    """Does the grant cover this subject on this day? (R-26.2: only while valid, only granted subjects)"""
    if grant["revoked"]:
        return False
    if not (date.fromisoformat(grant["valid_from"]) <= on <= date.fromisoformat(grant["valid_until"])):
        return False
    return not grant["subjects"] or subject_id in grant["subjects"]


@dataclass(frozen=True)
class Route:
    department: str
    grant_id: str
    purpose: str | None
    items: tuple[str, ...] | None  # None: every item


def routes(publisher: str, subject_id: str, entry: Mapping[str, Any], subscribers: Iterable[str],
           grants: Iterable[Mapping[str, Any]], on: date) -> list[Route]:
    """Who receives a delivery, in which scope: R-27.1 subscribers of unconditional resources,
    R-26.2 holders of a valid directed authorization for conditional ones, nobody for no-share ones."""
    content = entry["entry"]
    attribute = content["share_attribute"]
    out: dict[str, Route] = {}
    if attribute == "unconditional":
        for dept in subscribers:
            out[dept] = Route(dept, f"subscription:{content['resource_code']}:{dept}", None, None)
    elif attribute == "conditional":
        for g in sorted(grants, key=lambda g: g["grant_id"]):
            if g["grantee"] not in out and grant_valid(g, subject_id, on):
                out[g["grantee"]] = Route(g["grantee"], g["grant_id"], g["purpose"], tuple(g["items"]))
    # attribute "none": the resource never leaves its provider
    out.pop(publisher, None)
    return [out[d] for d in sorted(out)]


def project(items: Mapping[str, Any], allowed: tuple[str, ...] | None) -> dict[str, Any]:
    """Exactly the granted items (R-26.2)."""
    if allowed is None:
        return dict(items)
    return {k: v for k, v in items.items() if k in allowed}


def check_request_state(request_id: str, held: Mapping[str, Any] | None, allowed: Iterable[str]) -> Refusal | None:
    """R-26.1: an answer, a dispute or a ruling acts on a request that exists and is in a state that allows it."""
    if held is None:
        return Refusal(f"cannot act on {request_id}: no such request", ("R-26.1",))
    if held["status"] not in allowed:
        return Refusal(f"cannot act on {request_id}: the request is {held['status']}", ("R-26.1",))
    return None


def check_revocation(revocation: Mapping[str, Any], grant: Mapping[str, Any] | None) -> Refusal | None:
    """R-26.2: a directed authorization in force is revoked by its provider only."""
    what = f"cannot revoke {revocation['grant_id']}"
    if grant is None:
        return Refusal(f"{what}: no such authorization", ("R-26.2",))
    if grant["revoked"]:
        return Refusal(f"{what}: it is already revoked", ("R-26.2",))
    if revocation["by"] != grant["provider"]:
        return Refusal(f"{what}: only its provider {grant['provider']} revokes it", ("R-26.2",))
    return None


def revoke(grant: Mapping[str, Any], revocation: Mapping[str, Any]) -> dict[str, Any]:
    """R-26.2: the authorization as revoked, with who revoked it and why; it stays on record."""
    return {**grant, "revoked": True, "revoked_reason": f"{revocation['reason']} ({revocation['person']})"}


def check_dispute(dispute: Mapping[str, Any], held: Mapping[str, Any]) -> Refusal | None:
    """R-25.1: a share decision is disputed by one of its two parties."""
    requester, provider = held["request"]["requester"], held["provider"]
    if dispute["by"] not in (requester, provider):
        return Refusal(f"only {requester} or {provider} can dispute this request", ("R-25.1",))
    return None


def check_ruling(ruling: Mapping[str, Any], held: Mapping[str, Any]) -> Refusal | None:
    """R-25.1: a dispute is ruled by the authority it went to, upholding or overturning the decision."""
    if ruling["authority"] != held["authority"] or ruling["ruling"] not in ("uphold", "overturn"):
        return Refusal(f"the ruling is {held['authority']}'s, as uphold or overturn", ("R-25.1",))
    return None
