"""Helpers shared by the service modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

from agent_runtime.db.sqlite_engine import is_sqlite_connection, write_transaction
from agent_runtime.errors import PreconditionFailedError

DB = BaseDBAsyncClient  # a Tortoise connection or a transaction on it


class Unset:
    """Marks an argument the caller did not pass (None is a value: "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


# The transaction of the current HTTP request (see core/dependencies.py): it is the
# only one, and any error rolls all of it back, so a service needs no savepoint in it.
_request_transaction: ContextVar[BaseDBAsyncClient | None] = ContextVar(
    "request_transaction", default=None
)


@asynccontextmanager
async def atomic(db: BaseDBAsyncClient) -> AsyncIterator[BaseDBAsyncClient]:
    """A transaction on `db`, or a savepoint when `db` already is a transaction,
    or nothing when `db` is the request's transaction (saves a SAVEPOINT + RELEASE).
    Once a transaction of its own has committed, says so if it wrote events.

    Tortoise's public `in_transaction()` looks the connection up by name in the
    current context; callers hand us `db` explicitly, so we use it directly.
    """
    if db is _request_transaction.get():
        yield db
        return
    outermost = not isinstance(db, TransactionalDBClient)
    async with db._in_transaction() as conn:
        yield conn
    if outermost:
        events_committed()


def write_atomic(db: BaseDBAsyncClient) -> AbstractAsyncContextManager[BaseDBAsyncClient]:
    """`atomic(db)`, but on SQLite's connection itself a `LazySqliteTransaction`
    (fewer trips to its thread: `agent_runtime.db.sqlite_engine`)."""
    if is_sqlite_connection(db):
        return _lazy_atomic(db)
    return atomic(db)


@asynccontextmanager
async def _lazy_atomic(db: BaseDBAsyncClient) -> AsyncIterator[BaseDBAsyncClient]:
    async with write_transaction(db) as conn:
        yield conn
    events_committed()


def outside_transactions(db: BaseDBAsyncClient) -> BaseDBAsyncClient:
    """The pooled client `db` is (or whose transaction `db` is): a statement on it
    runs on a connection of its own, in no caller's transaction. (Tortoise's
    `get_connection` would give the current context's transaction.)"""
    while isinstance(db, TransactionalDBClient):
        db = db._parent
    return db


# Events written in this task's transaction, not yet announced (see `events_committed`).
_events_written: ContextVar[bool] = ContextVar("events_written", default=False)
_commit_listeners: list[Callable[[], None]] = []


def event_written() -> None:
    """Note that the current transaction wrote an event (`record_event` calls it)."""
    _events_written.set(True)


def events_committed() -> None:
    """Call once a transaction has committed: if it wrote events, tell the listeners
    (this process's event hub, which then reads the log). Whoever commits calls it:
    `atomic` for a transaction of its own, the request dependency for a request's."""
    if _events_written.get():
        _events_written.set(False)
        for listener in _commit_listeners:
            listener()


def on_events_committed(listener: Callable[[], None]) -> Callable[[], None]:
    """Register `listener`; returns the function that unregisters it."""
    _commit_listeners.append(listener)
    return lambda: _commit_listeners.remove(listener) if listener in _commit_listeners else None


@contextmanager
def request_transaction(transaction: BaseDBAsyncClient) -> Iterator[None]:
    """Mark `transaction` as the whole request's: rolled back entirely on any error."""
    token = _request_transaction.set(transaction)
    try:
        yield
    finally:
        _request_transaction.reset(token)


def check_version(if_version: Any) -> None:
    """An `if_version` that no session can have fails as a precondition, not as input."""
    if if_version is not None and (
        isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 1
    ):
        raise PreconditionFailedError(f"version {if_version!r} does not match")
