"""Retry or set aside: a sink decides from the error's class, never from its message."""

import asyncio

import asyncpg
import asyncpg.exceptions as pg
import pytest

from consumers.errors import RecordRefused, SinkUnavailable, classify


@pytest.mark.parametrize("exc", [
    pg.UntranslatableCharacterError("unsupported Unicode escape sequence"),  # 22P05: a NUL in jsonb
    pg.CharacterNotInRepertoireError("invalid byte sequence for encoding \"UTF8\": 0x00"),
    pg.InvalidTextRepresentationError("invalid input syntax for type json"),
    pg.CheckViolationError("new row violates check constraint"),
    pg.NotNullViolationError("null value in column"),
    pg.NumericValueOutOfRangeError("value out of range"),
    asyncpg.exceptions._base.DataError("invalid input for query argument $1"),  # asyncpg's own check
    ValueError("cannot turn this record into a row"),
])
def test_what_the_store_refuses_is_set_aside(exc):
    err = classify(exc)
    assert isinstance(err, RecordRefused) and not err.retriable
    assert err.error_class == type(exc).__name__


@pytest.mark.parametrize("exc", [
    OSError("Connect call failed"),
    asyncio.TimeoutError(),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.SerializationError("could not serialize access"),
    pg.DeadlockDetectedError("deadlock detected"),
    pg.TooManyConnectionsError("too many clients"),
    pg.UndefinedTableError("relation \"ledger_quarantine\" does not exist"),  # a migration not yet applied
    asyncpg.InterfaceError("connection is closed"),
])
def test_what_passes_with_time_is_retried(exc):
    err = classify(exc, retry_after=0.25)
    assert isinstance(err, SinkUnavailable) and err.retriable and err.retry_after == 0.25
