"""Tortoise SQLite engine with `BEGIN IMMEDIATE` and a commit that cannot wedge the process.

Two traps of Tortoise's stock SQLite client (see the stack-traps note):

* it opens transactions with a deferred `BEGIN`; two processes that read then
  write on one WAL file then fail with "database is locked" at once, because
  busy_timeout does not apply to a deferred transaction upgrading its lock.
  `BEGIN IMMEDIATE` takes the write lock up front, so busy_timeout queues writers;
* a failed `COMMIT` leaves the SQLite transaction open, and every later
  `BEGIN` on the process's single connection fails. We roll back and re-raise.

It also has the write transaction (`write_transaction`) of a save, of each HTTP
request and of a LangGraph checkpoint: on SQLite, every trip to aiosqlite's thread
costs a wake-up of that thread and of the event loop (as much as the SQL of a
save), so that transaction's BEGIN IMMEDIATE travels with its first statement and
an `execute_many` (it returns nothing) with the statement after it, or the COMMIT
(`LazySqliteTransaction`). It is opt-in, not every transaction's: an error of an
`execute_many` is raised by the next statement, which code catching it around the
call itself would not expect.

Used through the engine path `agent_runtime.db.sqlite_engine` in the Tortoise config.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from tortoise.backends.base.client import (
    BaseDBAsyncClient,
    NestedTransactionContext,
    TransactionalDBClient,
    TransactionContext,
)
from tortoise.backends.sqlite.client import (
    SqliteClient as _TortoiseSqliteClient,
)
from tortoise.backends.sqlite.client import (
    SqliteTransactionContext,
    SqliteTransactionWrapper,
    translate_exceptions,
)
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError

__all__ = [
    "LazySqliteTransaction",
    "SqliteClient",
    "client_class",
    "is_sqlite_connection",
    "write_transaction",
]


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(ImmediateTransactionWrapper(self))

    async def begin(self) -> None:
        conn = self._connection
        if conn.in_transaction:
            # Only reachable if something outside this engine left a transaction open.
            await conn.rollback()
        try:
            await conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc

    async def commit(self) -> None:
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        try:
            await self._connection.commit()
        except BaseException:
            if self._connection.in_transaction:
                await self._connection.rollback()
            raise
        finally:
            self._finalized = True


class SqliteClient(_TortoiseSqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = SqliteClient


def is_sqlite_connection(db: BaseDBAsyncClient) -> bool:
    """`db` is this engine's connection itself, not a transaction on it."""
    return isinstance(db, SqliteClient) and not isinstance(db, TransactionalDBClient)


_T = TypeVar("_T")
_NUL = "'||CHAR(0)||'"  # what Tortoise's SQLite client puts for a NUL in a statement


class _BeginFailed(Exception):
    """BEGIN IMMEDIATE failed in aiosqlite's thread (args: the sqlite3 error)."""


class LazySqliteTransaction(ImmediateTransactionWrapper):
    """A SQLite transaction (BEGIN IMMEDIATE, the engine's safe COMMIT) that saves
    trips to aiosqlite's thread, each a wake-up of that thread and of the event loop:

    * BEGIN IMMEDIATE is sent with the first statement, in the same trip; a
      transaction that sends no statement costs no trip at all;
    * `execute_many` (which returns nothing) waits for the next statement, or the
      COMMIT, and goes in its trip. An error of its statement is raised by that
      next call, in the same transaction; a rollback drops it unsent.

    Everything else is Tortoise's SQLite transaction: the same statements, results
    and exceptions (`translate_exceptions`), the connection's lock held from the
    start (nothing else of this process uses the connection meanwhile), savepoints
    for nested transactions. Runs functions in aiosqlite's thread through its
    `_execute`, and reads the sqlite3 connection as `_conn`, as Tortoise does.
    """

    def __init__(self, connection: SqliteClient | LazySqliteTransaction) -> None:
        super().__init__(connection)
        self._begun = False  # BEGIN IMMEDIATE sent (or on its way: see `_trip`)
        self._queued: list[tuple[str, list[Any]]] = []  # execute_many not sent yet
        self._savepoints = 0  # open in it: meanwhile nothing waits (a rollback to one
        # must undo what was written after it)

    async def begin(self) -> None:
        """Nothing yet: BEGIN IMMEDIATE goes with the first statement."""

    async def _trip(
        self, connection: aiosqlite.Connection, last: Callable[[sqlite3.Connection], _T]
    ) -> _T:
        """One trip to the thread: BEGIN IMMEDIATE if not sent yet, the queued
        `execute_many`s, then `last`."""
        begin, queued = not self._begun, self._queued
        # Marked before the trip: if the task is cancelled while the thread runs it,
        # the rollback (queued after it) still happens.
        self._begun, self._queued = True, []
        raw = connection._conn

        def trip() -> _T:
            if begin:
                if raw.in_transaction:  # left open by something outside this engine
                    raw.rollback()
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:  # as the engine's `begin`
                    raise _BeginFailed(exc) from exc
            for query, values in queued:
                raw.executemany(query, values)
            return last(raw)

        try:
            return await connection._execute(trip)
        except _BeginFailed as exc:
            # Nothing began: a next statement tries again, with what was queued.
            self._begun = False
            self._queued[:0] = queued
            raise TransactionManagementError(exc.args[0]) from exc.args[0]

    async def _send(self, last: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self.acquire_connection() as connection:
            return await self._trip(connection, last)

    @translate_exceptions
    async def execute_query(
        self, query: str, values: list[Any] | None = None
    ) -> tuple[int, Sequence[dict[str, Any]]]:
        query = query.replace("\x00", _NUL)
        self.log.debug("%s: %s", query, values)

        def run(raw: sqlite3.Connection) -> tuple[int, list[Any]]:
            start = raw.total_changes
            rows = raw.execute(query, [] if values is None else values).fetchall()
            return (raw.total_changes - start) or len(rows), rows

        return await self._send(run)

    @translate_exceptions
    async def execute_query_dict(
        self, query: str, values: list[Any] | None = None
    ) -> list[dict[str, Any]]:
        query = query.replace("\x00", _NUL)
        self.log.debug("%s: %s", query, values)

        def run(raw: sqlite3.Connection) -> list[dict[str, Any]]:
            return list(map(dict, raw.execute(query, [] if values is None else values)))

        return await self._send(run)

    @translate_exceptions
    async def execute_insert(self, query: str, values: list[Any]) -> int:
        self.log.debug("%s: %s", query, values)

        def run(raw: sqlite3.Connection) -> int:
            cursor = raw.execute(query, values)
            cursor.execute("SELECT last_insert_rowid()")
            return int(cursor.fetchone()[0])

        return await self._send(run)

    @translate_exceptions
    async def execute_many(self, query: str, values: list[list[Any]]) -> None:
        self.log.debug("%s: %s", query, values)
        self._queued.append((query, list(values)))
        if self._savepoints:
            await self.send_queued()

    @translate_exceptions
    async def execute_script(self, query: str) -> None:
        await self.send_queued()
        await super().execute_script(query)

    async def send_queued(self) -> None:
        """BEGIN IMMEDIATE and the queued statements now, if not sent yet."""
        if not self._begun or self._queued:
            await self._send(lambda raw: None)

    def _in_transaction(self) -> TransactionContext:
        return _SavepointAfterBegin(self)

    async def savepoint(self) -> None:
        await self.send_queued()
        await super().savepoint()

    async def rollback(self) -> None:
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        self._queued = []
        if self._begun:
            await self._connection.rollback()
        self._finalized = True

    async def commit(self) -> None:
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        if not self._begun and not self._queued:  # nothing was sent: nothing to commit
            self._finalized = True
            return
        queued, self._queued = self._queued, []

        def commit(raw: sqlite3.Connection) -> None:
            # The engine's COMMIT (roll back if it fails), after the queued statements.
            try:
                try:
                    for query, values in queued:
                        raw.executemany(query, values)
                except sqlite3.IntegrityError as exc:
                    raise IntegrityError(exc) from exc
                except sqlite3.OperationalError as exc:
                    raise OperationalError(exc) from exc
                raw.commit()
            except BaseException:
                if raw.in_transaction:
                    raw.rollback()
                raise

        try:
            await self._send(commit)
        finally:
            self._finalized = True


class _SavepointAfterBegin(NestedTransactionContext):
    """A nested transaction (savepoint) in a `LazySqliteTransaction`: BEGIN first."""

    def __init__(self, parent: LazySqliteTransaction) -> None:
        super().__init__(ImmediateTransactionWrapper(parent))
        self.parent = parent

    async def __aenter__(self) -> TransactionalDBClient:
        await self.parent.send_queued()
        client = await super().__aenter__()
        self.parent._savepoints += 1
        return client

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.parent._savepoints -= 1
        await super().__aexit__(exc_type, exc_val, exc_tb)


def write_transaction(db: BaseDBAsyncClient) -> TransactionContext:
    """A transaction on `db`, as `db._in_transaction()` (a savepoint when `db` is a
    transaction), but a `LazySqliteTransaction` on this engine's connection."""
    if is_sqlite_connection(db):
        assert isinstance(db, SqliteClient)
        return SqliteTransactionContext(LazySqliteTransaction(db), db._lock)
    return db._in_transaction()
