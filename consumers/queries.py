"""The questions asked of the ledger in PostgreSQL: one async function per question, taking a dsn and its
parameters and returning rows, each on a short-lived connection."""

from __future__ import annotations

import asyncio

import asyncpg

LEDGER_TABLES = ("ledger_deliveries", "ledger_feed_deliveries", "ledger_rejects")


async def connect(dsn: str, attempts: int = 30) -> asyncpg.Connection:
    """A connection, retried for a while: a database that is starting refuses them at first."""
    for i in range(attempts):
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if i == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def fetch(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    """One query on a short-lived connection."""
    conn = await connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def ledger_counts(dsn: str) -> dict[str, int]:
    """Rows in each ledger table: accepted publications, feed deliveries, rejects."""
    (row,) = await fetch(dsn, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in LEDGER_TABLES))
    return {t: row[t] for t in LEDGER_TABLES}


async def rejects_by_code(dsn: str) -> list[asyncpg.Record]:
    """Rejects counted by code, most frequent first, each with an example reason."""
    return await fetch(dsn, "SELECT code, count(*) AS n, max(reason) AS example FROM ledger_rejects"
                            " GROUP BY code ORDER BY n DESC")


async def quarantined(dsn: str, show_all: bool, limit: int) -> list[asyncpg.Record]:
    """Records the database refused, oldest first; with `show_all` also those already replayed."""
    return await fetch(dsn, "SELECT quarantine_id, source_topic, source_partition, source_offset, record_type,"
                            " quarantined_at, replayed_at, reason, replay_error FROM ledger_quarantine"
                            " WHERE $1 OR replayed_at IS NULL ORDER BY quarantine_id LIMIT $2", show_all, limit)


async def deadline_notices(dsn: str, party: str | None, limit: int) -> list[asyncpg.Record]:
    """Deadline notices, newest first, of one party or of all."""
    return await fetch(dsn, "SELECT * FROM deadline_notices WHERE ($1::text IS NULL OR party = $1)"
                            " ORDER BY occurred_at DESC LIMIT $2", party, limit)


async def catalog_entries(dsn: str, county: str | None = None, provider: str | None = None) -> list[asyncpg.Record]:
    """The approved catalog by resource code: the city's (everything), or one county's, or one provider's."""
    return await fetch(dsn, "SELECT * FROM catalog_entries WHERE ($1::text IS NULL OR county = $1)"
                            " AND ($2::text IS NULL OR provider = $2) ORDER BY resource_code", county, provider)


async def catalog_entry(dsn: str, resource_code: str) -> asyncpg.Record | None:
    """One approved entry, or None."""
    rows = await fetch(dsn, "SELECT * FROM catalog_entries WHERE resource_code = $1", resource_code)
    return rows[0] if rows else None


async def responsibility_list(dsn: str, department: str) -> list[asyncpg.Record]:
    """A department's collection responsibility list, by resource code."""
    return await fetch(dsn, "SELECT * FROM responsibility_lists WHERE department = $1 ORDER BY resource_code",
                       department)


async def catalog_decisions(dsn: str, department: str | None, limit: int) -> list[asyncpg.Record]:
    """Decisions on catalog inputs, newest first, of one department or of all."""
    return await fetch(dsn, "SELECT * FROM catalog_decisions WHERE ($1::text IS NULL OR department = $1)"
                            " ORDER BY occurred_at DESC LIMIT $2", department, limit)


async def grants(dsn: str, grantee: str | None) -> list[asyncpg.Record]:
    """Directed authorizations in the order they were granted, of one grantee or of all."""
    return await fetch(dsn, "SELECT * FROM grants WHERE ($1::text IS NULL OR grantee = $1) ORDER BY granted_at",
                       grantee)


async def alert_summary(dsn: str, department: str | None) -> list[asyncpg.Record]:
    """Alerts summed up by kind and department, most recently seen first."""
    return await fetch(dsn, "SELECT * FROM alert_summary WHERE ($1::text IS NULL OR department = $1)"
                            " ORDER BY last_seen DESC", department)


RECEIVED = ("SELECT f.subscriber, f.delivered_at, f.resource_code, f.subject_id, f.publisher, f.event_id, f.grant_id,"
            " CASE WHEN g.grant_id IS NOT NULL THEN 'grant' WHEN f.grant_id LIKE 'subscription:%' THEN 'subscription'"
            " ELSE 'unknown' END AS basis, COALESCE(f.purpose, g.purpose) AS purpose, f.items, f.digest"
            " FROM ledger_feed_deliveries f LEFT JOIN grants g ON g.grant_id = f.grant_id")


async def who_received(dsn: str, subject: str | None = None, resource: str | None = None,
                       since=None) -> list[asyncpg.Record]:
    """Every delivery of a subject's data, or of a resource's, to any department (R-8.1): who, when, under which
    grant or subscription, for which purpose, which items; oldest first."""
    if subject is None and resource is None:
        raise ValueError("who received what: name a subject or a resource")
    return await fetch(dsn, RECEIVED + " WHERE ($1::text IS NULL OR f.subject_id = $1)"
                       " AND ($2::text IS NULL OR f.resource_code = $2)"
                       " AND ($3::timestamptz IS NULL OR f.delivered_at >= $3)"
                       " ORDER BY f.delivered_at, f.subscriber, f.event_id", subject, resource, since)


async def catalog_codes(dsn: str) -> list[str]:
    """The resource codes of every catalog entry the ledger holds."""
    return [r["resource_code"] for r in await fetch(dsn, "SELECT resource_code FROM catalog_entries"
                                                         " ORDER BY resource_code")]


async def what_received(dsn: str, department: str, since=None) -> list[asyncpg.Record]:
    """Everything one department received, oldest first, with the same particulars as `who_received`."""
    return await fetch(dsn, RECEIVED + " WHERE f.subscriber = $1 AND ($2::timestamptz IS NULL OR f.delivered_at >= $2)"
                       " ORDER BY f.delivered_at, f.event_id", department, since)


async def evaluation_inputs(dsn: str, start, end) -> dict[str, list[dict]]:
    """What the yearly evaluation reads (R-46.1), as plain rows: the catalog with each entry's first approval, every
    catalog and share decision (deadlines reach across the year's ends), and the publications, feed deliveries,
    rejects and alerts recorded from `start` to `end`. Rejects keep their bytes; the resource and system of those
    the evaluation needs come from the publication they refused."""
    from schemas.codec import default_codec
    from schemas.errors import CodecError

    conn = await connect(dsn)
    try:
        entries = await conn.fetch(
            "SELECT e.resource_code, e.provider, e.county, e.level, e.name, e.share_attribute, e.update_cycle,"
            " e.system_code, e.approved_at, (SELECT min(d.occurred_at) FROM catalog_decisions d"
            "  WHERE d.resource_code = e.resource_code AND d.subject_kind = 'entry' AND d.status = 'approved')"
            " AS first_approved FROM catalog_entries e ORDER BY e.resource_code")
        catalog = await conn.fetch(
            "SELECT event_id, subject_kind, subject_id, resource_code, department, status, late, due_on, occurred_at"
            " FROM catalog_decisions WHERE subject_kind IN ('entry', 'change') ORDER BY occurred_at, event_id")
        sharing = await conn.fetch(
            "SELECT event_id, request_id, department, resource_code, status, due_on, occurred_at"
            " FROM share_decisions ORDER BY occurred_at, event_id")
        publications = await conn.fetch(
            "SELECT publisher, resource_code, (accepted_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*) AS n"
            " FROM ledger_deliveries WHERE accepted_at >= $1 AND accepted_at < $2 GROUP BY 1, 2, 3", start, end)
        shared = await conn.fetch(
            "SELECT publisher, resource_code, count(DISTINCT subscriber) AS subscribers FROM ledger_feed_deliveries"
            " WHERE delivered_at >= $1 AND delivered_at < $2 AND subscriber <> publisher GROUP BY 1, 2", start, end)
        counted = await conn.fetch(
            "SELECT publisher, code, count(*) AS n FROM ledger_rejects WHERE rejected_at >= $1 AND rejected_at < $2"
            " AND code NOT IN ('unknown_resource', 'one_source_violation') GROUP BY 1, 2", start, end)
        named = await conn.fetch(
            "SELECT publisher, code, raw FROM ledger_rejects WHERE rejected_at >= $1 AND rejected_at < $2"
            " AND code IN ('unknown_resource', 'one_source_violation')", start, end)
        alerts = await conn.fetch(
            "SELECT a.kind, a.department, a.system_code, a.resource_code, count(*) AS subjects FROM alerts a"
            " JOIN alert_subjects s ON s.alert_id = a.alert_id WHERE s.seen_at >= $1 AND s.seen_at < $2"
            " GROUP BY 1, 2, 3, 4", start, end)
    finally:
        await conn.close()
    codec = default_codec()
    grouped: dict[tuple, int] = {}
    for r in named:
        try:
            d = codec.decode(bytes(r["raw"])).record
        except CodecError:
            d = {}
        key = (r["publisher"], r["code"], d.get("resource_code"), d.get("system_code"))
        grouped[key] = grouped.get(key, 0) + 1
    rejects = [{"publisher": r["publisher"], "code": r["code"], "resource_code": None, "system_code": None,
                "n": r["n"]} for r in counted]
    rejects += [{"publisher": p, "code": c, "resource_code": rc, "system_code": sc, "n": n}
                for (p, c, rc, sc), n in grouped.items()]
    return {"entries": [dict(r) for r in entries], "catalog_decisions": [dict(r) for r in catalog],
            "share_decisions": [dict(r) for r in sharing], "publications": [dict(r) for r in publications],
            "shared": [dict(r) for r in shared], "rejects": rejects, "alerts": [dict(r) for r in alerts]}
