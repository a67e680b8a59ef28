"""Which failures answer 503 (database unavailable) instead of 500."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from agent_runtime.db.errors import is_database_unavailable, is_missing_table


def wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("while committing") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        TimeoutError(),
        DBConnectionError("Can't establish connection"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.InterfaceError("connection is closed"),
        sqlite3.OperationalError("database is locked"),
        OperationalError(sqlite3.OperationalError("disk I/O error")),
        wrapped(ConnectionRefusedError()),
    ],
)
def test_outages_are_unavailable(exc):
    assert is_database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        KeyError("x"),
        IntegrityError("duplicate key"),
        sqlite3.IntegrityError("FOREIGN KEY constraint failed"),
        sqlite3.OperationalError("no such table: sessions"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        wrapped(ValueError("bug")),
    ],
)
def test_bugs_and_bad_data_are_not(exc):
    assert not is_database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError(
            asyncpg.exceptions.UndefinedTableError('relation "aerich" does not exist')
        ),
        OperationalError(sqlite3.OperationalError("no such table: aerich")),
        wrapped(OperationalError(sqlite3.OperationalError("no such table: aerich"))),
    ],
)
def test_a_missing_table_is_recognised(exc):
    assert is_missing_table(exc)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError(asyncpg.exceptions.InsufficientPrivilegeError("permission denied")),
        OperationalError(asyncpg.exceptions.DuplicatePreparedStatementError("already exists")),
        OperationalError(sqlite3.OperationalError("database is locked")),
        ConnectionRefusedError(),
    ],
)
def test_other_database_errors_are_not_a_missing_table(exc):
    assert not is_missing_table(exc)
