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


async def what_received(dsn: str, department: str, since=None) -> list[asyncpg.Record]:
    """Everything one department received, oldest first, with the same particulars as `who_received`."""
    return await fetch(dsn, RECEIVED + " WHERE f.subscriber = $1 AND ($2::timestamptz IS NULL OR f.delivered_at >= $2)"
                       " ORDER BY f.delivered_at, f.event_id", department, since)
