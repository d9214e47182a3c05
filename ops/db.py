"""Schema migrations: plain SQL files in ops/migrations, applied in order, recorded, safe to re-run."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg

log = logging.getLogger("govbus.db")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK = 0x60B05  # advisory lock id: two starters never apply the same file twice


async def connect(dsn: str, attempts: int = 30) -> asyncpg.Connection:
    for i in range(attempts):
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if i == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


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
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
        await conn.close()
    return applied_now


async def fetch(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    """One query on a short-lived connection (the CLI's way to read the ledger)."""
    conn = await connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
