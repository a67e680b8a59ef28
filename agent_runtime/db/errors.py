"""Which failures mean "the database is unavailable" (answer 503, retry later)
rather than "the service has a bug" (500), and which mean "no such table"."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from tortoise.exceptions import DBConnectionError

__all__ = ["is_database_unavailable", "is_missing_table"]

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused / reset; also Tortoise's DBConnectionError
    DBConnectionError,
    TimeoutError,  # connect or command timeout
    asyncpg.PostgresConnectionError,  # class 08: connection exceptions
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, crash, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,  # "connection is closed" when the server went away
)
_SQLITE_UNAVAILABLE = ("database is locked", "disk i/o error", "unable to open database")
# asyncpg's protocol state machine refusing a query: the server sent an unsolicited
# error to an idle pooled connection (e.g. FATAL "terminating connection due to
# administrator command" when PostgreSQL shuts down) and the connection is handed out
# before its end-of-stream is seen. Nothing was sent to the server.
_ASYNCPG_BROKEN_CONNECTION = ("cannot switch to state",)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # Tortoise wraps driver errors as OperationalError(original): look inside too.
        wrapped = current.args[0] if current.args else None
        if isinstance(wrapped, BaseException) and id(wrapped) not in seen:
            current = wrapped
        else:
            current = current.__cause__ or current.__context__


def is_database_unavailable(exc: BaseException) -> bool:
    """True if `exc`, or an exception it wraps, says the database cannot serve now."""
    for current in _chain(exc):
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
            text in str(current).lower() for text in _SQLITE_UNAVAILABLE
        ):
            return True
        if isinstance(current, asyncpg.exceptions.InternalClientError) and str(current).startswith(
            _ASYNCPG_BROKEN_CONNECTION
        ):
            return True
    return False


def is_missing_table(exc: BaseException) -> bool:
    """True if `exc` says a table does not exist (and nothing else went wrong): e.g.
    no `aerich` table in a database never migrated."""
    return any(
        isinstance(current, asyncpg.exceptions.UndefinedTableError)
        or (isinstance(current, sqlite3.OperationalError) and "no such table" in str(current))
        for current in _chain(exc)
    )
