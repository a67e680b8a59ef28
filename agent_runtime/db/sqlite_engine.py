"""Tortoise SQLite engine with `BEGIN IMMEDIATE` and a commit that cannot wedge the process.

Two traps of Tortoise's stock SQLite client (see the stack-traps note):

* it opens transactions with a deferred `BEGIN`; two processes that read then
  write on one WAL file then fail with "database is locked" at once, because
  busy_timeout does not apply to a deferred transaction upgrading its lock.
  `BEGIN IMMEDIATE` takes the write lock up front, so busy_timeout queues writers;
* a failed `COMMIT` leaves the SQLite transaction open, and every later
  `BEGIN` on the process's single connection fails. We roll back and re-raise.

Used through the engine path `agent_runtime.db.sqlite_engine` in the Tortoise config.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import NestedTransactionContext, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient as _TortoiseSqliteClient,
)
from tortoise.backends.sqlite.client import (
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError

__all__ = ["SqliteClient", "client_class"]


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
