"""`govbus catalog ...`: submit, review and read the catalog as a department officer would."""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from ops.config import settings

DECISION = "govbus.catalog.CatalogDecision"
CONTENT_FIELDS = (
    "resource_code", "name", "provider", "summary", "classification", "base_database", "data_items", "format",
    "share_attribute", "share_conditions", "share_basis", "open_attribute", "open_conditions", "open_basis",
    "security_level", "classified", "usage_requirements", "update_cycle", "legal_basis", "system_code",
)
ITEM_FIELDS = ("name", "type", "subject_id", "basic", "personal")


def _run(coro):
    from ops.cli import _run as run

    return run(coro)


def _read(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path} is neither YAML nor JSON: {exc}") from None


def entry_from_file(raw: dict[str, Any], provider: str) -> dict[str, Any]:
    """A CatalogEntry content record from what an officer wrote; unknown keys are an error, not ignored."""
    unknown = sorted(set(raw) - set(CONTENT_FIELDS) - {"kind", "change_date", "change_reason"})
    if unknown:
        raise click.ClickException(f"unknown fields {', '.join(unknown)}; an entry has {', '.join(CONTENT_FIELDS)}")
    items = []
    for i in raw.get("data_items") or []:
        if not isinstance(i, dict) or "name" not in i:
            raise click.ClickException(f"data item {i!r} needs at least a name and a type")
        items.append({"name": str(i["name"]), "type": str(i.get("type", "")),
                      **{f: bool(i.get(f, False)) for f in ("subject_id", "basic", "personal")}})
    entry: dict[str, Any] = {f: raw.get(f) for f in CONTENT_FIELDS}
    for f, v in entry.items():
        if f not in ("data_items", "classified") and v is not None:
            entry[f] = str(v)
    for f in ("resource_code", "name", "summary", "classification", "format", "share_attribute", "open_attribute",
              "security_level", "usage_requirements", "update_cycle", "legal_basis", "system_code"):
        entry[f] = entry[f] or ""  # missing required fields are the agent's to refuse, with the rule id
    entry["provider"] = entry["provider"] or provider
    entry["data_items"] = items
    entry["classified"] = bool(raw.get("classified", False))
    return entry


def _print_decisions(decisions: list[dict]) -> None:
    for d in decisions:
        rules = f" [{', '.join(d['rule_ids'])}]" if d["rule_ids"] else ""
        late = " LATE" if d["late"] else ""
        click.echo(f"{d['subject_id']}  {d['resource_code'] or '-'}  {d['status']}{late}{rules}")
        for r in d["reasons"]:
            click.echo(f"    {r}")


async def _submit_and_wait(events: list[tuple[bytes, str, dict]], wait: float) -> list[dict]:
    from ops.kafka_io import send_and_wait
    from topics.registry import CATALOG_DECISIONS, CATALOG_INBOX

    ids = {rec["event_id"] for _, _, rec in events}
    return await send_and_wait(CATALOG_INBOX, events, CATALOG_DECISIONS, DECISION,
                               lambda d: d["subject_id"] in ids,
                               lambda got: ids <= {d["subject_id"] for d in got}, wait)


async def review_and_wait(rec: dict, wait: float) -> list[dict]:
    """Send a review; the answer is the submission's new decision, or the refusal of the review."""
    from ops.kafka_io import send_and_wait
    from topics.registry import CATALOG_DECISIONS, CATALOG_INBOX

    keys = {rec["submission_id"], rec["event_id"]}
    return await send_and_wait(
        CATALOG_INBOX, [(rec["reviewer"].encode(), "govbus.catalog.CatalogReview", rec)], CATALOG_DECISIONS,
        DECISION, lambda d: d["subject_id"] in keys and d["status"] != "pending_review", bool, wait)


@click.group()
def catalog() -> None:
    """The government data resource catalog (政务数据资源目录)."""


@catalog.command()
@click.argument("path")
@click.option("--as", "department", required=True, help="Submitting department, e.g. NJ-GA.")
@click.option("--wait", type=float, default=20.0, show_default=True, help="Seconds to wait for the decisions.")
def submit(path: str, department: str, wait: float) -> None:
    """Submit catalog entries from a YAML or JSON file: one entry, a list, or {entries: [...]}."""
    raw = _read(path)
    entries = raw.get("entries", [raw]) if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise click.ClickException(f"{path} holds no catalog entry")
    now = datetime.now(UTC)
    events = []
    for e in entries:
        if not isinstance(e, dict):
            raise click.ClickException(f"an entry is a mapping of fields, not {e!r}")
        kind = str(e.get("kind", raw.get("kind", "new") if isinstance(raw, dict) else "new"))
        change_date = e.get("change_date", raw.get("change_date") if isinstance(raw, dict) else None)
        rec = {"event_id": uuid.uuid4().hex, "occurred_at": now, "submitter": department, "kind": kind,
               "change_date": str(change_date) if change_date else None,
               "change_reason": e.get("change_reason"), "entry": entry_from_file(e, department)}
        events.append((department.encode(), "govbus.catalog.CatalogSubmission", rec))
    decisions = _run(_submit_and_wait(events, wait))
    for _, _, rec in events:
        click.echo(f"submitted {rec['entry']['resource_code'] or '(no code)'} as {rec['event_id']}")
    _print_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


@catalog.command()
@click.argument("submission_id")
@click.option("--as", "reviewer", required=True, help="Reviewing authority, e.g. NJ-SJJ.")
@click.option("--person", required=True, help="Name of the reviewing officer.")
@click.option("--approve", "decision", flag_value="approve", help="Approve the submission.")
@click.option("--reject", "decision", flag_value="reject", help="Reject it (give --reason).")
@click.option("--reason", default=None)
@click.option("--wait", type=float, default=20.0, show_default=True)
def review(submission_id: str, reviewer: str, person: str, decision: str | None, reason: str | None,
           wait: float) -> None:
    """Approve or reject a submission (the authority, within 10 working days: R-14.1)."""
    if decision is None:
        raise click.UsageError("say --approve or --reject")
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "reviewer": reviewer,
           "reviewer_person": person, "submission_id": submission_id, "decision": decision, "reason": reason}

    decisions = _run(review_and_wait(rec, wait))
    _print_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions) or not decisions:
        sys.exit(1)


@catalog.command("register-system")
@click.argument("path")
@click.option("--as", "department", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def register_system(path: str, department: str, wait: float) -> None:
    """Register an information system (code, name, stage, interfaces, resource_codes) (R-13.2)."""
    raw = _read(path)
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": department,
           "system_code": str(raw["system_code"]), "name": str(raw["name"]),
           "stage": str(raw.get("stage", "registered")),
           "interfaces": [{"name": str(i["name"]), "kind": str(i["kind"]), "resource_code": i.get("resource_code")}
                          for i in raw.get("interfaces") or []],
           "resource_codes": [str(c) for c in raw.get("resource_codes") or []]}
    decisions = _run(_submit_and_wait([(department.encode(), "govbus.catalog.SystemRegistration", rec)], wait))
    _print_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


@catalog.command()
@click.argument("path")
@click.option("--as", "department", required=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def demand(path: str, department: str, wait: float) -> None:
    """Submit a demand list (需求清单): resources the department needs, each with its purpose."""
    raw = _read(path)
    items = raw.get("demands", raw) if isinstance(raw, dict) else raw
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "submitter": department,
           "items": [{"name": str(i.get("name", "")), "provider": i.get("provider"),
                      "resource_code": i.get("resource_code"),
                      "data_items": [str(x) for x in i.get("data_items") or []],
                      "purpose": str(i.get("purpose") or ""), "basis": i.get("basis")} for i in items]}
    decisions = _run(_submit_and_wait([(department.encode(), "govbus.catalog.DemandList", rec)], wait))
    _print_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


@catalog.command()
@click.option("--department", required=True, help="Department whose catalog must follow the change.")
@click.option("--date", "change_date", required=True, help="Date of the change, YYYY-MM-DD.")
@click.option("--kind", "change_kind", type=click.Choice(["law", "function", "system"]), required=True)
@click.option("--description", required=True)
@click.option("--as", "reported_by", default="NJ-SJJ", show_default=True)
@click.option("--wait", type=float, default=20.0, show_default=True)
def change(department: str, change_date: str, change_kind: str, description: str, reported_by: str,
           wait: float) -> None:
    """Record a change of law, function or system: the department's update is due in 15 working days."""
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": department,
           "change_date": change_date, "change_kind": change_kind, "description": description,
           "reported_by": reported_by}
    decisions = _run(_submit_and_wait([(department.encode(), "govbus.catalog.CatalogChange", rec)], wait))
    _print_decisions(decisions)
    if any(d["status"] == "refused" for d in decisions):
        sys.exit(1)


async def _fetch(sql: str, *args) -> list:
    from ops.db import fetch

    return await fetch(settings().dsn, sql, *args)


@catalog.command("list")
@click.option("--county", default=None, help="Only the county catalog, e.g. WY.")
@click.option("--provider", default=None)
def list_entries(county: str | None, provider: str | None) -> None:
    """The approved catalog: the city's (everything), or one county's."""
    rows = _run(_fetch(
        "SELECT resource_code, version, provider, name, share_attribute, open_attribute, county FROM catalog_entries"
        " WHERE ($1::text IS NULL OR county = $1) AND ($2::text IS NULL OR provider = $2) ORDER BY resource_code",
        county, provider))
    for r in rows:
        click.echo(f"{r['resource_code']:16} v{r['version']:<3} {r['provider']:9} {r['county'] or 'city':5} "
                   f"share={r['share_attribute']:13} open={r['open_attribute']:13} {r['name']}")
    click.echo(f"{len(rows)} entries")


@catalog.command()
@click.argument("resource_code")
def show(resource_code: str) -> None:
    """One entry, in full."""
    rows = _run(_fetch("SELECT * FROM catalog_entries WHERE resource_code = $1", resource_code))
    if not rows:
        raise click.ClickException(f"{resource_code} is not in the approved catalog")
    r = rows[0]
    click.echo(f"{r['resource_code']} v{r['version']}, approved {r['approved_at']:%Y-%m-%d} by {r['approved_by']}")
    click.echo(yaml.safe_dump(json.loads(r["content"]), allow_unicode=True, sort_keys=False))


@catalog.command()
@click.argument("department")
def responsibilities(department: str) -> None:
    """A department's collection responsibility list (采集责任清单, R-13.1)."""
    rows = _run(_fetch("SELECT * FROM responsibility_lists WHERE department = $1 ORDER BY resource_code",
                       department))
    for r in rows:
        click.echo(f"{r['resource_code']:16} {r['update_cycle']:10} {r['system_code']:12} {r['name']}")
    click.echo(f"{len(rows)} resources")


@catalog.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="-")
def export(fmt: str, output: str) -> None:
    """Export the approved catalog as CSV or JSON."""
    rows = _run(_fetch("SELECT * FROM catalog_entries ORDER BY resource_code"))
    entries = [{"version": r["version"], "level": r["level"], "county": r["county"],
                "approved_at": r["approved_at"].isoformat(), "approved_by": r["approved_by"],
                **json.loads(r["content"])} for r in rows]
    if fmt == "json":
        text = json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
    else:
        buf = io.StringIO()
        cols = ["resource_code", "version", "level", "county", *[c for c in CONTENT_FIELDS if c != "resource_code"],
                "approved_at", "approved_by"]
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for e in entries:
            e["data_items"] = "; ".join(
                f"{i['name']}:{i['type']}" + ("*" if i["subject_id"] else "") for i in e["data_items"])
            w.writerow({c: e.get(c) for c in cols})
        text = buf.getvalue()
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{len(entries)} entries written to {output}")


@catalog.command()
@click.option("--department", default=None)
@click.option("--limit", default=50, show_default=True)
def decisions(department: str | None, limit: int) -> None:
    """Recent decisions on catalog inputs, newest first (e.g. to find submissions awaiting review)."""
    rows = _run(_fetch("SELECT * FROM catalog_decisions WHERE ($1::text IS NULL OR department = $1)"
                       " ORDER BY occurred_at DESC LIMIT $2", department, limit))
    _print_decisions([dict(r) for r in rows])
