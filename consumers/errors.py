"""How a sink or a feed reader reacts to a failure: by the error's attributes, not its message.

    ConsumerError                 retriable = False
     +-- SinkUnavailable          retriable = True, retry_after: the store is down; keep the batch, wait, retry
     +-- RecordRefused            retriable = False: the store refuses this record; set it aside, go on
"""

from __future__ import annotations

import asyncio

import asyncpg


class ConsumerError(Exception):
    retriable = False


class SinkUnavailable(ConsumerError):
    retriable = True

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.retry_after = retry_after


class RecordRefused(ConsumerError):
    """The store refused what it was given (a value it cannot hold, a constraint): retrying the same
    record can never succeed, so it is quarantined and the sink goes on with the next one."""

    retriable = False

    def __init__(self, reason: str, error_class: str, sqlstate: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class
        self.sqlstate = sqlstate


# SQLSTATE classes in which the database judged the data itself: 22 data exception, 23 integrity
# constraint violation. Everything else (connection, resources, locks, operator intervention, a
# missing table before its migration) is the store's state, not the record's, and passes with time.
REFUSING_CLASSES = ("22", "23")
CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                     asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                     # a connection cut in the middle of a statement, found out by the transaction's rollback
                     asyncpg.InternalClientError)


def classify(exc: BaseException, retry_after: float = 0.5) -> ConsumerError:
    """The sink's view of a store error: retry it later, or set the record aside."""
    if isinstance(exc, ConsumerError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if state[:2] in REFUSING_CLASSES:
            return RecordRefused(exc.args[0] if exc.args else str(exc), type(exc).__name__, state)
        return SinkUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}", retry_after)
    if isinstance(exc, (ValueError, TypeError, KeyError, OverflowError)):
        # the record could not even be turned into the row's arguments (asyncpg's own argument check,
        # a DataError, is a ValueError too)
        return RecordRefused(f"{type(exc).__name__}: {exc}", type(exc).__name__)
    if isinstance(exc, CONNECTION_ERRORS):
        return SinkUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}", retry_after)
    return SinkUnavailable(f"{type(exc).__name__}: {exc}", retry_after)
