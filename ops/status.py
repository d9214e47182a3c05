"""`govbus status`: the broker, the database, the supervised processes, consumer lag, the ledger, its
quarantine, deadlines and recent rejects on one screen, and an exit code that says whether all is well."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from consumers.queries import LEDGER_TABLES
from ops.supervisor import StateUnreadable, read_state, same_process
from topics import registry
from topics.admin import one_image
from topics.settings import Settings, kafka_options, start_client

DEFAULT_MAX_LAG = 1000
SMALL_GAP = 20  # offsets between a commit and the end that are read to tell records from commit markers
MAX_PEEKS = 200
WIDTH = 80


def bus_groups(prefix: str) -> dict[str, str]:
    """The consumer groups of the bus's own processes, and what each one is."""
    return {f"{prefix}govbus-deliveries": "delivery stream", f"{prefix}govbus-ledger": "ledger sink",
            f"{prefix}govbus-deadlines": "deadline service", f"{prefix}govbus": "faust agents"}


def _error(exc: BaseException) -> str:
    text, kind = str(exc), type(exc).__name__
    if "Unable to bootstrap" in text:
        return "no broker answered"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return text if text.startswith(kind) else f"{kind}: {text}" if text else kind


def _masked(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _part(out: dict, key: str, fn: Callable[[], Awaitable], timeout: float) -> None:
    """out[key] = await fn(), or {"error": ...}: one part that cannot be read leaves the others readable."""
    try:
        out[key] = await asyncio.wait_for(fn(), timeout)
    except Exception as exc:
        out[key] = {"error": _error(exc)}


# --------------------------------------------------------------------------- Kafka


async def consumer_lag(admin, bootstrap: str, prefix: str) -> list[dict]:
    """Every consumer group of the deployment: the bus's own, and every other group that has committed
    offsets on the deployment's topics (subscribers' feed groups); per partition its committed offset,
    the end offset (of committed data) and the lag between them."""
    from aiokafka import AIOKafkaConsumer

    own = bus_groups(prefix)
    ours = prefix + "govbus"  # every topic of the deployment, faust's changelogs included, starts so
    listed = {g[0]: g[1] for g in await admin.list_consumer_groups()}
    existing = set(await admin.list_topics())
    limit = asyncio.Semaphore(16)

    async def offsets(group: str) -> dict:
        async with limit:
            return await admin.list_consumer_group_offsets(group)

    names = sorted(listed)
    committed: dict[str, dict] = {}
    for group, offs in zip(names, await asyncio.gather(*(offsets(g) for g in names)), strict=True):
        mine = {tp: om.offset for tp, om in offs.items()
                if om.offset >= 0 and tp.topic.startswith(ours) and tp.topic in existing}
        if mine or group in own:
            committed[group] = mine
    for group in own:
        committed.setdefault(group, {})

    tps = sorted({tp for offs in committed.values() for tp in offs})
    ends: dict = {}
    lags: dict = {}
    if tps:
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_options(),
                                  group_id=None, enable_auto_commit=False,
                                  isolation_level="read_committed")
        await start_client(reader)
        try:
            ends = await reader.end_offsets(tps)
            for group, offs in committed.items():
                for tp, off in offs.items():
                    lags[(group, tp)] = max(0, ends[tp] - off)
            # a transaction's commit marker takes an offset but is no record: a group that has read all of a
            # transactional topic stays an offset or so short of its end, so small gaps are read and counted
            small = sorted({(tp, committed[group][tp]) for (group, tp), lag in lags.items() if 0 < lag <= SMALL_GAP},
                           key=lambda span: (span[0].topic, span[0].partition, span[1]))
            counted = await records_between(reader, small[:MAX_PEEKS], ends)
            for (group, tp), lag in lags.items():
                lags[(group, tp)] = counted.get((tp, committed[group][tp]), lag)
        finally:
            await reader.stop()

    described: dict[str, dict] = {}

    async def describe(group: str) -> None:
        # one group per request: aiokafka 0.14 fails to decode a DescribeGroups answer about several
        async with limit:
            for resp in await admin.describe_consumer_groups([group]):
                for g in resp.to_object()["groups"]:
                    described[g["group"]] = {"state": g["state"], "members": len(g["members"])}

    await asyncio.gather(*(describe(g) for g in committed if g in listed))

    groups = []
    for group, offs in sorted(committed.items(), key=lambda kv: (kv[0] not in own, kv[0])):
        feed_only = bool(offs) and all(tp.topic.startswith(prefix + registry.FEED_PREFIX) for tp in offs)
        parts = [{"topic": tp.topic, "partition": tp.partition, "committed": off, "end": ends.get(tp),
                  "lag": lags.get((group, tp))}
                 for tp, off in sorted(offs.items(), key=lambda kv: (kv[0].topic, kv[0].partition))]
        info = described.get(group, {})
        groups.append({
            "group": group, "kind": "bus" if group in own else "feed" if feed_only else "other",
            "role": own.get(group), "exists": group in listed, "state": info.get("state"),
            "members": info.get("members"), "lag": sum(p["lag"] or 0 for p in parts), "partitions": parts,
        })
    return groups


async def records_between(reader, spans: list, ends: dict, timeout: float = 3.0) -> dict:
    """For each (partition, offset): the records of committed transactions from that offset to the end
    offset, read with `reader` (a read_committed consumer without a group); spans not read in time are
    left out."""
    counted: dict = {}
    if not spans:
        return counted
    by_tp: dict = {}
    for tp, off in spans:
        by_tp.setdefault(tp, []).append(off)
    reader.assign(list(by_tp))
    for tp, offs in by_tp.items():
        reader.seek(tp, min(offs))
    seen: dict = {tp: [] for tp in by_tp}
    pending = set(by_tp)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for tp, recs in (await reader.getmany(*pending, timeout_ms=200)).items():
            seen[tp].extend(r.offset for r in recs if r.offset < ends[tp])
        for tp in list(pending):
            if await reader.position(tp) >= ends[tp]:
                pending.discard(tp)
    for tp, off in spans:
        if tp not in pending:
            counted[(tp, off)] = sum(1 for o in seen[tp] if o >= off)
    return counted


async def open_deadlines(bootstrap: str, prefix: str, timeout: float) -> dict:
    """Open deadlines counted from the deadline state topic, read as `govbus deadlines list` reads it."""
    from ops.kafka_io import deadline_states

    return deadline_counts(await deadline_states(bootstrap, prefix, timeout))


def deadline_counts(states: list[dict]) -> dict:
    """Open, breached and provisional deadlines, and the next due date still ahead (a breached one is counted as
    breached, not shown as coming due)."""
    open_ = [d for d in states if not d["closed"]]
    return {"open": len(open_), "breached": sum(1 for d in open_ if d["breached"]),
            "provisional": sum(1 for d in open_ if d["provisional"]),
            "next_due": min((d["due_on"] for d in open_ if not d["breached"]), default=None)}


async def replica_health(admin, prefix: str) -> dict:
    """The cluster's brokers counted with those its replicas name (a lost one too), and the partitions of the
    deployment and of the broker's own topics that miss replicas: under-replicated, or with fewer in sync than
    min.insync.replicas, where writes with acks=all are refused. All from one broker's one metadata answer, so that
    a broker reported lost has its partitions reported with it."""
    names = [n for n in await admin.list_topics() if n.startswith((f"{prefix}govbus", "__"))]
    image = await one_image(admin, names)
    described = image["topics"]
    ids = {b["node_id"] for b in image["brokers"]}
    known = ids | {r for meta in described for part in meta["partitions"] for r in part["replicas"]}
    min_insync = registry.replication(len(known)).min_insync
    under, refused = [], []
    for meta in sorted(described, key=lambda m: m["topic"]):
        for part in sorted(meta["partitions"], key=lambda p: p["partition"]):
            name = f"{meta['topic']}[{part['partition']}]"
            if len(part["isr"]) < len(part["replicas"]):
                under.append(name)
            if len(part["isr"]) < min(min_insync, len(part["replicas"])):
                refused.append(name)
    return {"brokers": len(ids), "known_brokers": len(known), "missing_brokers": sorted(known - ids),
            "under_replicated": len(under),
            "below_min_insync": refused[:10], "below_min_insync_count": len(refused)}


async def kafka_part(settings: Settings, timeout: float) -> dict:
    from aiokafka.admin import AIOKafkaAdminClient

    out: dict = {"broker": {"reachable": False, "bootstrap": settings.bootstrap}}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_options(settings),
                                request_timeout_ms=int(timeout * 1000))
    try:
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        except Exception as exc:
            out["broker"]["error"] = _error(exc)
            return out
        out["broker"].update(reachable=True, brokers=len(cluster["brokers"]))
        try:
            out["broker"].update(await asyncio.wait_for(
                replica_health(admin, settings.topic_prefix), timeout * 2))
        except Exception as exc:
            out["broker"]["replicas_error"] = _error(exc)
        await asyncio.gather(
            _part(out, "consumer_groups", lambda: consumer_lag(admin, settings.bootstrap, settings.topic_prefix),
                  timeout * 4),
            _part(out, "deadlines", lambda: open_deadlines(settings.bootstrap, settings.topic_prefix, timeout),
                  timeout * 4))
        return out
    finally:
        await admin.close()


# --------------------------------------------------------------------------- PostgreSQL


async def database_part(settings: Settings, timeout: float) -> dict:
    import asyncpg

    out: dict = {"database": {"reachable": False, "dsn": _masked(settings.dsn)}}
    try:
        conn = await asyncpg.connect(settings.dsn, timeout=timeout)
    except Exception as exc:
        out["database"]["error"] = _error(exc)
        return out
    out["database"]["reachable"] = True
    try:
        async def ledger() -> dict:
            seen = {}
            for table in LEDGER_TABLES:
                # a table not there yet (migrations not applied) is left out, not an error
                with contextlib.suppress(asyncpg.UndefinedTableError):
                    seen[table] = await conn.fetchval(f"SELECT max(recorded_at) FROM {table}")
            last = max((t for t in seen.values() if t is not None), default=None)
            age = (await conn.fetchval("SELECT extract(epoch FROM now() - $1::timestamptz)", last)
                   if last else None)
            return {"last_write": last.isoformat() if last else None,
                    "age_seconds": round(float(age), 1) if age is not None else None,
                    "tables": [t for t in LEDGER_TABLES if t in seen]}

        async def quarantine() -> dict:
            try:
                # this deployment's: the records read from its own (prefixed) topics
                row = await conn.fetchrow("SELECT count(*) AS n, min(quarantined_at) AS oldest FROM ledger_quarantine"
                                          " WHERE replayed_at IS NULL AND starts_with(source_topic, $1)",
                                          settings.topic_prefix)
            except asyncpg.UndefinedTableError:
                return {"unresolved": None, "note": "no ledger_quarantine table: migrations not applied"}
            return {"unresolved": row["n"], "oldest": row["oldest"].isoformat() if row["oldest"] else None}

        async def rejects() -> dict:
            rows = await conn.fetch("SELECT code, count(*) AS n FROM ledger_rejects"
                                    " WHERE rejected_at > now() - interval '1 hour' GROUP BY code ORDER BY n DESC")
            return {"by_code": {r["code"]: r["n"] for r in rows}, "total": sum(r["n"] for r in rows)}

        async def breaches() -> dict:
            n = await conn.fetchval("SELECT count(*) FROM deadline_notices WHERE kind = 'breach'"
                                    " AND occurred_at > now() - interval '24 hours'")
            return {"last_24h": n}

        # one connection answers one query at a time
        for key, fn in (("ledger", ledger), ("quarantine", quarantine), ("rejects_last_hour", rejects),
                        ("breach_notices", breaches)):
            await _part(out, key, fn, timeout)
    finally:
        await conn.close()
    return out


# --------------------------------------------------------------------------- processes


def processes_part(settings: Settings) -> dict:
    """The supervised processes as `govbus run` recorded them, each checked against the running system."""
    try:
        state = read_state(settings.state_dir)
    except StateUnreadable as exc:
        return {"supervisor": {"state": "unreadable", "running": False, "error": str(exc)}, "processes": []}
    if state is None:
        return {"supervisor": None, "processes": []}
    now = time.time()
    sup = dict(state.get("supervisor") or {})
    sup["running"] = sup.get("state") == "running" and same_process(sup.get("pid"), sup.get("pid_start"))
    procs = []
    for p in state.get("processes", []):
        running = p.get("state") == "running" and same_process(p.get("pid"), p.get("pid_start"))
        started = datetime.fromisoformat(p["started_at"]).timestamp() if p.get("started_at") else None
        procs.append({**{k: v for k, v in p.items() if k != "argv"}, "running": running,
                      "uptime_seconds": round(now - started, 1) if running and started else None})
    return {"supervisor": sup, "processes": procs}


def steps_of(metrics_text: str, process: str) -> tuple[bool, int]:
    """From a process's metrics page: whether its last step failed, and how many failed since it started."""
    from prometheus_client.parser import text_string_to_metric_families

    failing, failures = False, 0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("process") != process:
                continue
            if sample.name == "govbus_step_failing":
                failing = sample.value >= 1
            elif sample.name == "govbus_step_failures_total":
                failures = int(sample.value)
    return failing, failures


async def failing_steps(procs: list[dict], timeout: float = 2.0) -> None:
    """Each running process that serves metrics: `step_failing` and `step_failures` from its own page (a process can
    run, and stay up, while every step it tries fails)."""
    import urllib.request

    def page(address: str) -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as r:  # noqa: S310  (our own)
            return r.read().decode()

    async def one(p: dict) -> None:
        try:
            text = await asyncio.to_thread(page, p["metrics"])
        except OSError:
            return  # not answering: GovbusTargetDown's, and the process line says whether it runs
        p["step_failing"], p["step_failures"] = steps_of(text, p["name"])

    await asyncio.gather(*(one(p) for p in procs if p.get("running") and p.get("metrics")))


# --------------------------------------------------------------------------- the report


async def collect(settings: Settings, *, max_lag: int = DEFAULT_MAX_LAG, timeout: float = 5.0) -> dict:
    """Everything `govbus status` shows, as one JSON-ready dict; `problems` empty when all is well."""
    report: dict = {"checked_at": datetime.now(UTC).isoformat(), "prefix": settings.topic_prefix,
                    "state_dir": str(settings.state_dir), "max_lag": max_lag}
    kafka, db = await asyncio.gather(kafka_part(settings, timeout), database_part(settings, timeout))
    report.update(kafka)
    report.update(db)
    report.update(processes_part(settings))
    await failing_steps(report["processes"])
    for key in ("consumer_groups", "deadlines", "ledger", "quarantine", "rejects_last_hour", "breach_notices"):
        report.setdefault(key, None)  # None: not read, its store is unreachable
    report["problems"] = problems(report)
    report["ok"] = not report["problems"]
    return report


def problems(report: dict) -> list[str]:
    out = []
    if not report["broker"]["reachable"]:
        out.append(f"broker {report['broker']['bootstrap']} unreachable: {report['broker'].get('error')}")
    if not report["database"]["reachable"]:
        out.append(f"database {report['database']['dsn']} unreachable: {report['database'].get('error')}")
    out.extend(replica_problems(report["broker"]))
    sup = report["supervisor"]
    if sup is not None and sup.get("state") == "stopped":
        # stopped on purpose, everything with it: one line says it all
        out.append(f"govbus run was stopped at {(sup.get('stopped_at') or '?')[:19].replace('T', ' ')} UTC: "
                   "the bus is not running here")
        return out + _store_problems(report)
    if sup is not None and sup.get("state") == "unreadable":
        out.append(sup["error"])
    elif sup is not None and not sup["running"]:
        out.append(f"govbus run (pid {sup.get('pid')}) is not running: nothing restarts its processes")
    for p in report["processes"]:
        if p["crash_looping"]:
            last = (p.get("last_exit") or {}).get("description", "")
            out.append(f"{p['name']} is crash-looping ({p['restarts']} restarts), last it {last}")
        elif not p["running"]:
            last = (p.get("last_exit") or {}).get("description")
            out.append(f"{p['name']} is not running ({p['state']}" + (f", last it {last})" if last else ")"))
        elif p.get("step_failing"):
            out.append(f"{p['name']} runs, but its last step failed ({p.get('step_failures', 0)} failed since it "
                       f"started) and what waits behind it does not move: its log ({p['name']}.log) names the error")
    groups = report["consumer_groups"]
    if isinstance(groups, dict):
        out.append(f"consumer lag not read: {groups['error']}")
    elif groups:
        for g in groups:
            if g["kind"] == "bus" and g["lag"] > report["max_lag"]:
                out.append(f"{g['role']} ({g['group']}) is {g['lag']} records behind (over {report['max_lag']})")
    return out + _store_problems(report)


def replica_problems(b: dict) -> list[str]:
    out = []
    if b.get("missing_brokers"):
        out.append(f"broker(s) {', '.join(map(str, b['missing_brokers']))} of the cluster not answering: their "
                   f"partitions run on fewer copies ({b['under_replicated']} under-replicated); bring them back")
    if b.get("below_min_insync_count"):
        out.append(f"{b['below_min_insync_count']} partition(s) with fewer in-sync replicas than min.insync.replicas "
                   f"(first: {', '.join(b['below_min_insync'][:3])}): writes to them are refused until their "
                   "brokers are back")
    return out


def _store_problems(report: dict) -> list[str]:
    q = report["quarantine"]
    if isinstance(q, dict) and q.get("unresolved"):
        return [f"{q['unresolved']} record(s) in ledger_quarantine (govbus ledger quarantine)"]
    return []


# --------------------------------------------------------------------------- text


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _short(name: str, prefix: str) -> str:
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _wrapped(text: str, indent: str) -> list[str]:
    # between words only: topic, group and department names have hyphens and dots, and stay whole
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False, break_long_words=False) or [indent]


def _brokers(b: dict) -> str:
    known = b.get("known_brokers", b["brokers"])
    shown = f"{b['brokers']} broker{'s' if b['brokers'] != 1 else ''}" if known == b["brokers"] else \
        f"{b['brokers']} of {known} brokers"
    if b.get("under_replicated"):
        shown += f", {b['under_replicated']} partitions under-replicated"
    return shown


def render(report: dict) -> str:
    """The report for a terminal of 80 columns; names are shown without the deployment prefix."""
    prefix = report["prefix"]
    lines = [f"govbus status  {report['checked_at'][:19].replace('T', ' ')} UTC"
             + (f"  deployment {prefix}" if prefix else "")]
    b, d = report["broker"], report["database"]
    lines.append(_fit(f"broker     {'ok  ' if b['reachable'] else 'DOWN'}  {b['bootstrap']}"
                      + (f" ({_brokers(b)})" if b["reachable"] else ""), WIDTH))
    lines.append(_fit(f"database   {'ok  ' if d['reachable'] else 'DOWN'}  {d['dsn']}", WIDTH))

    lines.append("")
    sup = report["supervisor"]
    if sup is None:
        lines.extend(_wrapped(f"processes  none: no `govbus run` has recorded any in {report['state_dir']}", ""))
    elif sup.get("state") == "unreadable":
        lines.extend(_wrapped(f"processes  unknown: {sup['error']}", ""))
    else:
        state = "running" if sup["running"] else "STOPPED" if sup.get("state") == "stopped" else "NOT RUNNING"
        lines.append(_fit(f"processes  govbus run pid {sup.get('pid')} {state}"
                          + (f", metrics {sup['metrics']}" if sup.get("metrics") else ""), WIDTH))
        for p in report["processes"]:
            if p["running"]:
                what = f"pid {p['pid']:<7} up {_ago(p['uptime_seconds']):<8}"
            else:
                what = f"{'CRASH-LOOPING' if p['crash_looping'] else 'DOWN (' + p['state'] + ')':<24}"
            lines.append(_fit(f"  {p['name']:<11} {what} restarts {p['restarts']:<4} {p['metrics'] or ''}", WIDTH))
            last = p.get("last_exit")
            if last and (p["restarts"] or not p["running"]) and p["state"] != "stopped":
                lines.extend(_wrapped(f"last exit {last['at'][11:19]}: {last['description']} after "
                                      f"{_ago(last['uptime_seconds'])} up", "      "))
                if not p["running"] and last.get("log_tail"):
                    lines.extend("      | " + _fit(t, WIDTH - 8) for t in last["log_tail"][-3:])

    lines.append("")
    groups = report["consumer_groups"]
    if groups is None:
        lines.append("consumer lag  unknown (broker unreachable)")
    elif isinstance(groups, dict):
        lines.append(_fit(f"consumer lag  not read: {groups['error']}", WIDTH))
    else:
        lines.append(f"consumer lag (records; the bus's own groups fail over {report['max_lag']})")
        lines.append(f"  {'GROUP':<36} {'STATE':<12} {'MEMBERS':>7} {'PARTS':>5} {'LAG':>10}")
        for g in groups:
            name = _short(g["group"], prefix) + (f" ({g['kind']})" if g["kind"] != "bus" else "")
            state = g["state"] or ("(none yet)" if not g["exists"] else "?")
            members = "" if g["members"] is None else g["members"]
            lines.append(f"  {_fit(name, 36):<36} {_fit(state, 12):<12} {members:>7} {len(g['partitions']):>5} "
                         f"{g['lag']:>10}")
            behind = sorted((p for p in g["partitions"] if p["lag"]), key=lambda p: -p["lag"])
            if behind:
                shown = " ".join(f"{_short(p['topic'], prefix)}[{p['partition']}]={p['lag']}" for p in behind[:4])
                more = f" and {len(behind) - 4} more" if len(behind) > 4 else ""
                lines.extend(_wrapped(f"behind: {shown}{more}", "    "))

    lines.append("")
    led = report["ledger"]
    if led is None:
        lines.append("ledger     unknown (database unreachable)")
    elif "error" in led:
        lines.append(_fit(f"ledger     not read: {led['error']}", WIDTH))
    else:
        lines.append("ledger     " + (f"last write {_ago(led['age_seconds'])} ago" if led["last_write"]
                                      else "nothing written yet"))
    q = report["quarantine"]
    if q is None or "error" in q or q.get("unresolved") is None:
        why = (q or {}).get("note") or (q or {}).get("error") or "database unreachable"
        lines.append(_fit(f"quarantine unknown ({why})", WIDTH))
    else:
        lines.append(f"quarantine {q['unresolved']} record(s) waiting"
                     + (f", the oldest since {q['oldest'][:16].replace('T', ' ')}" if q.get("oldest") else ""))
    dl, bn = report["deadlines"], report["breach_notices"]
    if dl is None or "error" in dl:
        lines.append(_fit(f"deadlines  unknown ({(dl or {}).get('error', 'broker unreachable')})", WIDTH))
    else:
        text = f"deadlines  {dl['open']} open, {dl['breached']} breached, {dl['provisional']} provisional"
        text += f"; next due {dl['next_due']}" if dl["next_due"] else ""
        if bn and "error" not in bn:
            text += f"; {bn['last_24h']} breach notices in 24h"
        lines.extend(_wrapped(text, ""))
    rj = report["rejects_last_hour"]
    if rj is None or "error" in rj:
        lines.append(_fit(f"rejects    unknown ({(rj or {}).get('error', 'database unreachable')})", WIDTH))
    else:
        by_code = ", ".join(f"{code} {n}" for code, n in rj["by_code"].items()) or "none"
        lines.extend(_wrapped(f"rejects    last hour: {by_code}", ""))

    lines.append("")
    if report["problems"]:
        lines.append(f"{len(report['problems'])} problem{'s' if len(report['problems']) != 1 else ''}:")
        for p in report["problems"]:
            lines.extend(textwrap.wrap(p, WIDTH, initial_indent="  - ", subsequent_indent="    "))
    else:
        lines.append("all well")
    return "\n".join(lines)
