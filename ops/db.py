"""Schema migrations: plain SQL files in ops/migrations, applied in order, recorded, safe to re-run."""

from __future__ import annotations

import logging
from pathlib import Path

from consumers.ledger import seal_all
from consumers.queries import connect

log = logging.getLogger("govbus.db")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK = 0x60B05  # advisory lock id: two starters never apply the same file twice


async def migrate(dsn: str) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    conn = await connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied_now.append(path.name)
            log.info("applied migration %s", path.name)
        if applied_now:
            # rows recorded before the ledger was chained get their hashes before anything is appended
            sealed = await seal_all(conn)
            if sealed:
                log.info("sealed %d ledger rows recorded before the chain", sealed)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
        await conn.close()
    return applied_now

