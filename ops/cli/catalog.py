"""`govbus catalog ...`: submit, review and read the catalog as a department officer would."""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from topics.settings import settings

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


SUBMISSION_FIELDS = (*CONTENT_FIELDS, "kind", "change_date", "change_reason")
DEMAND_FIELDS = ("name", "provider", "resource_code", "data_items", "purpose", "basis")
SYSTEM_FIELDS = ("system_code", "name", "stage", "interfaces", "resource_codes")
INTERFACE_FIELDS = ("name", "kind", "resource_code")


def _read(path: str) -> Any:
    """What a YAML or JSON file ('-': standard input) holds, or a ClickException saying why it cannot be read."""
    where = "standard input" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{where} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {where}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{where} is neither YAML nor JSON: {exc}") from None
    except RecursionError:
        raise click.ClickException(f"{where} nests lists and mappings too deeply to read") from None
    except ValueError as exc:  # a date that is no day (2026-13-01), a number too long to convert
        raise click.ClickException(f"{where} cannot be read: {exc}") from None


# What an officer wrote, checked against what the bus carries: each helper raises a ClickException naming the
# field and what it takes. Whether the content is acceptable (required fields, rules) is the agents' to say.


def _shown(value: Any) -> str:
    """A value read from a file, as a message names it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (datetime, date)):
        return f"the date {value}"
    return repr(value)


def _mapping(value: Any, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """`value` as a mapping of some of `fields`; unknown fields are an error, not ignored."""
    if not isinstance(value, dict):
        raise click.ClickException(f"{what} is a mapping of fields ({', '.join(fields)}), not {_shown(value)}")
    odd = [k for k in value if not isinstance(k, str)]
    if odd:
        raise click.ClickException(f"{what}: a field name is text, not {_shown(odd[0])}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise click.ClickException(f"unknown fields {', '.join(unknown)} in {what}; it has {', '.join(fields)}")
    return value


def _text(value: Any, field: str) -> str | None:
    """A text field: a number or a date is written as text, nothing stays None, a list or mapping is an error."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, dict, bytes)):
        raise click.ClickException(f"{field} is text, not {_shown(value)}")
    return str(value)


def _required(value: Any, field: str) -> str:
    text = _text(value, field)
    if text is None:
        raise click.ClickException(f"{field} is missing")
    return text


def _flag(value: Any, field: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise click.ClickException(f"{field} is true or false, not {_shown(value)}")


def _sequence(value: Any, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise click.ClickException(f"{field} is a list, not {_shown(value)}")
    return value


def entry_from_file(raw: Any, provider: str) -> dict[str, Any]:
    """A CatalogEntry content record from what an officer wrote; unknown keys are an error, not ignored."""
    raw = _mapping(raw, "an entry", SUBMISSION_FIELDS)
    items = []
    for n, i in enumerate(_sequence(raw.get("data_items"), "data_items"), 1):
        what = f"data item {n}"
        i = _mapping(i, what, ITEM_FIELDS)
        if i.get("name") is None:
            raise click.ClickException(f"{what} needs at least a name and a type")
        items.append({"name": _required(i["name"], f"{what}: name"), "type": _text(i.get("type"), f"{what}: type")
                      or "", **{f: _flag(i.get(f), f"{what}: {f}") for f in ("subject_id", "basic", "personal")}})
    entry: dict[str, Any] = {f: _text(raw.get(f), f) for f in CONTENT_FIELDS if f not in ("data_items", "classified")}
    for f in ("resource_code", "name", "summary", "classification", "format", "share_attribute", "open_attribute",
              "security_level", "usage_requirements", "update_cycle", "legal_basis", "system_code"):
        entry[f] = entry[f] or ""  # missing required fields are the agent's to refuse, with the rule id
    entry["provider"] = entry["provider"] or provider
    entry["data_items"] = items
    entry["classified"] = _flag(raw.get("classified"), "classified")
    return entry


def submission_from_file(e: Any, top: dict[str, Any], department: str, now: datetime) -> dict[str, Any]:
    """A CatalogSubmission of one entry a file gives; `top` holds the file's own kind and change_date, if any."""
    entry = entry_from_file(e, department)
    reason = e.get("change_reason")
    if reason is not None and not isinstance(reason, str):
        raise click.ClickException(f"change_reason is text, not {_shown(reason)}: write it in quotes")
    change_date = e.get("change_date", top.get("change_date"))
    return {"event_id": uuid.uuid4().hex, "occurred_at": now, "submitter": department,
            "kind": _required(e.get("kind", top.get("kind", "new")), "kind (new or update)"),
            "change_date": _text(change_date, "change_date") if change_date else None,
            "change_reason": reason, "entry": entry}


def demands_from_file(raw: Any) -> list[dict[str, Any]]:
    """The Demand records of a demand list file: a list of demands, or {demands: [...]}."""
    demands = raw["demands"] if isinstance(raw, dict) and set(raw) == {"demands"} else raw
    if not isinstance(demands, list):
        raise click.ClickException(f"a demand list is a list of demands ({', '.join(DEMAND_FIELDS)}), "
                                   f"or demands: [...], not {_shown(demands)}")
    out = []
    for n, d in enumerate(demands, 1):
        what = f"demand {n}"
        d = _mapping(d, what, DEMAND_FIELDS)
        out.append({"name": _required(d.get("name"), f"{what}: name"),
                    "provider": _text(d.get("provider"), f"{what}: provider"),
                    "resource_code": _text(d.get("resource_code"), f"{what}: resource_code"),
                    "data_items": [_required(x, f"{what}: data item {k}")
                                   for k, x in enumerate(_sequence(d.get("data_items"), f"{what}: data_items"), 1)],
                    "purpose": _text(d.get("purpose") or "", f"{what}: purpose"),
                    "basis": _text(d.get("basis"), f"{what}: basis")})
    return out


def system_from_file(raw: Any) -> dict[str, Any]:
    """The fields of a SystemRegistration from a system file."""
    raw = _mapping(raw, "a system", SYSTEM_FIELDS)
    interfaces = []
    for n, i in enumerate(_sequence(raw.get("interfaces"), "interfaces"), 1):
        what = f"interface {n}"
        i = _mapping(i, what, INTERFACE_FIELDS)
        interfaces.append({"name": _required(i.get("name"), f"{what}: name"),
                           "kind": _required(i.get("kind"), f"{what}: kind (share or open)"),
                           "resource_code": _text(i.get("resource_code"), f"{what}: resource_code")})
    return {"system_code": _required(raw.get("system_code"), "system_code"),
            "name": _required(raw.get("name"), "name"),
            "stage": _required(raw.get("stage", "registered"), "stage (registered or accepted)"),
            "interfaces": interfaces,
            "resource_codes": [_required(c, f"resource code {k}")
                               for k, c in enumerate(_sequence(raw.get("resource_codes"), "resource_codes"), 1)]}


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
    # {entries: [...]} may give the kind and change_date of all its entries
    top = _mapping(raw, "the file", ("entries", "kind", "change_date")) \
        if isinstance(raw, dict) and "entries" in raw else {}
    entries = top["entries"] if top else [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise click.ClickException(f"{path} holds no catalog entry")
    now = datetime.now(UTC)
    events = [(department.encode(), "govbus.catalog.CatalogSubmission",
               submission_from_file(e, top, department, now)) for e in entries]
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
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "department": department,
           **system_from_file(_read(path))}
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
    rec = {"event_id": uuid.uuid4().hex, "occurred_at": datetime.now(UTC), "submitter": department,
           "items": demands_from_file(_read(path))}
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
