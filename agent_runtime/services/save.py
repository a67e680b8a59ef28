"""`save_session`: the legacy "here is the whole conversation" save, done incrementally.

The caller passes every message each time, as the legacy API requires; storage
only changes what differs. When the stored messages are a prefix of the new
list only the tail is inserted; otherwise messages are replaced from the first
difference. The result is what a delete-everything-and-reinsert save would
store (messages keep their original timestamps), at a cost that follows the new
messages rather than the length of the conversation: the stored list is known
from this process's cache (see `message_cache`) and compared in C, and only the
tail is validated and written.

It also holds the write transaction (`write_transaction`) the save and each HTTP
request's transaction use: on SQLite, every trip to aiosqlite's thread costs a
wake-up of that thread and of the event loop (as much as the SQL of a save), so
the transaction's BEGIN IMMEDIATE travels with its first statement and an
`execute_many` (it returns nothing) with the statement after it, or the COMMIT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite
from tortoise.backends.base.client import (
    NestedTransactionContext,
    TransactionalDBClient,
    TransactionContext,
)
from tortoise.backends.sqlite.client import SqliteTransactionContext, translate_exceptions
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError

from agent_runtime.db.sqlite_engine import ImmediateTransactionWrapper, SqliteClient
from agent_runtime.errors import InvalidInputError, PreconditionFailedError
from agent_runtime.observability.metrics import MESSAGE_CACHE_STALE, MESSAGES_PER_SAVE
from agent_runtime.schemas.sessions import MessageIn
from agent_runtime.schemas.types import cut_title
from agent_runtime.schemas.validation import require_id
from agent_runtime.services._common import DB, atomic, check_version, events_committed
from agent_runtime.services._sql import sql
from agent_runtime.services.events import record_event
from agent_runtime.services.message_cache import CachedMessages, message_cache, new_token
from agent_runtime.services.messages import (
    NewMessage,
    delete_messages_from,
    insert_messages,
    new_message,
    next_position,
    project,
    same_as_stored,
    stored_messages,
)
from agent_runtime.timeutils import parse_datetime, utc_now
from models import EventType
from models.queries import sessions as sessions_sql

__all__ = [
    "LazySqliteTransaction",
    "append_messages",
    "save_session",
    "write_messages",
    "write_transaction",
]

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


def write_transaction(db: DB) -> TransactionContext:
    """A transaction on `db`, as `db._in_transaction()` (a savepoint when `db` is a
    transaction), but a `LazySqliteTransaction` on this project's SQLite engine."""
    if isinstance(db, SqliteClient) and not isinstance(db, TransactionalDBClient):
        return SqliteTransactionContext(LazySqliteTransaction(db), db._lock)
    return db._in_transaction()


def _atomic(db: DB) -> AbstractAsyncContextManager[DB]:
    """`atomic(db)`, but a `LazySqliteTransaction` when `db` is the SQLite connection
    itself (the service API's save)."""
    if isinstance(db, SqliteClient) and not isinstance(db, TransactionalDBClient):
        return _lazy_atomic(db)
    return atomic(db)


@asynccontextmanager
async def _lazy_atomic(db: DB) -> AsyncIterator[DB]:
    """A `LazySqliteTransaction` on `db`; says so once it has committed, as `atomic`."""
    async with write_transaction(db) as conn:
        yield conn
    events_committed()


# PostgreSQL: the row lock serializes concurrent saves of one session. SQLite
# needs none: its transactions are serialized (BEGIN IMMEDIATE).
_LOCK = {"postgres": sessions_sql.LOCK_FOR_UPDATE, "sqlite": sessions_sql.LOCK}


async def _lock_session(conn: DB, session_id: str) -> dict[str, Any] | None:
    rows = await conn.execute_query_dict(sql(conn, _LOCK[conn.capabilities.dialect]), [session_id])
    return rows[0] if rows else None


def _first_user_title(messages: Sequence[Any]) -> str | None:
    for message in messages:
        if message.get("role") == "user" and message.get("content"):
            return cut_title(str(message["content"]))
    return None


def _common_prefix(cached: list[dict[str, Any]], messages: list[Any]) -> int:
    """How many leading messages equal the cached projections of the stored ones."""
    n = min(len(cached), len(messages))
    head = cached if n == len(cached) else cached[:n]
    if head == (messages if n == len(messages) else messages[:n]):  # in C: ~20 ns a message
        return n
    for i in range(n):
        new = messages[i]
        try:
            if new != cached[i] and not (isinstance(new, Mapping) and project(new) == cached[i]):
                return i
        except RecursionError:
            # Nested deeper than Python recurses: not what is stored (at most
            # JSON_DEPTH_MAX levels), and the validation of new messages refuses it.
            return i
    return n


def _check_arguments(
    session_id: Any, messages: Any, last_activity: Any, if_version: Any
) -> tuple[str, list[Any], datetime]:
    session_id = require_id(session_id)
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise InvalidInputError("messages must be a list of message objects")
    if not isinstance(messages, list):
        messages = list(messages)
    last_activity = parse_datetime(last_activity, "last_activity")
    check_version(if_version)
    return session_id, messages, last_activity


def _tail(
    session_id: str, messages: list[Any], keep: int, now: datetime, schema: type[MessageIn]
) -> list[NewMessage]:
    """The messages from `keep` on, validated into INSERT rows."""
    return [
        new_message(session_id, i, messages[i], now, schema=schema)
        for i in range(keep, len(messages))
    ]


async def _touch_if_current(
    conn: DB,
    session_id: str,
    cached_token: int,
    messages: list[Any],
    last_activity: datetime,
    token: int,
) -> int | None:
    """TOUCH the session if its stored messages are still `cached_token`'s; its new
    version, or None (nothing changed) if not. One statement instead of a lock read
    and an update: the UPDATE takes the row lock itself."""
    rows = await conn.execute_query_dict(
        sql(conn, sessions_sql.TOUCH_IF_CURRENT),
        [last_activity, token, _first_user_title(messages), session_id, cached_token],
    )
    return int(rows[0]["version"]) if rows else None


async def _touch(
    conn: DB,
    session_id: str,
    state: dict[str, Any],
    messages: list[Any],
    last_activity: datetime,
    token: int,
) -> int:
    """TOUCH the session locked by `_open_for_write`; its new version."""
    title = _first_user_title(messages) if state["untitled"] else None
    await conn.execute_query(
        sql(conn, sessions_sql.TOUCH), [last_activity, token, title, session_id]
    )
    return int(state["version"]) + 1  # TOUCH's increment, under the row lock


async def _record_saved(conn: DB, session_id: str, version: int) -> None:
    """The `session.saved` event: last, so the event lock is held only to the commit."""
    await record_event(conn, EventType.SESSION_SAVED, session_id, data={"version": version})


async def _open_for_write(
    conn: DB, session_id: str, now: datetime, last_activity: datetime, if_version: int | None
) -> dict[str, Any]:
    """Lock (creating if needed) the session row; check `if_version` against it."""
    state = await _lock_session(conn, session_id)
    if state is None:
        await conn.execute_query(
            sql(conn, sessions_sql.CREATE_EMPTY), [session_id, now, last_activity]
        )
        state = await _lock_session(conn, session_id)
        assert state is not None
    if if_version is not None and state["version"] != if_version:
        raise PreconditionFailedError(
            f"session {session_id!r} does not exist"
            if state["version"] == 0
            else f"session {session_id!r} has changed: version {if_version} does not match"
        )
    return state


async def save_session(
    db: DB,
    session_id: str,
    messages: list[dict[str, Any]],
    last_activity: datetime,
    *,
    if_version: int | None = None,
) -> None:
    """Create or update a session and replace its messages, all or nothing.

    Saving a soft-deleted session brings it back: the caller is using it.
    """
    await write_messages(db, session_id, messages, last_activity, if_version=if_version)


async def append_messages(
    db: DB,
    session_id: str,
    messages: list[dict[str, Any]],
    last_activity: datetime,
    *,
    if_version: int | None = None,
) -> None:
    """Add `messages` after the stored ones (creating the session if needed).

    Beyond the legacy API: the caller sends only the new messages, so the cost
    does not depend on the length of the conversation at all.
    """
    await write_messages(
        db, session_id, messages, last_activity, append=True, if_version=if_version
    )


async def write_messages(
    db: DB,
    session_id: str,
    messages: list[dict[str, Any]],
    last_activity: datetime,
    *,
    append: bool = False,
    if_version: int | None = None,
    schema: type[MessageIn] = MessageIn,
) -> int:
    """`save_session` (or with `append`, `append_messages`) returning the session's
    new version, its ETag; the messages written are validated with `schema` (the
    REST API passes `MessageCreate`, the same rule with its OpenAPI examples)."""
    if append:
        return await _append(db, session_id, messages, last_activity, if_version, schema)
    return await _save(db, session_id, messages, last_activity, if_version, schema)


@dataclass
class _Write:
    """What `_save` and `_append` share: the checked arguments, the write's time and
    new `messages_token`, and this process's copy of the stored list (if any)."""

    session_id: str
    messages: list[Any]
    last_activity: datetime
    if_version: int | None
    now: datetime
    token: int
    cached: CachedMessages | None

    @classmethod
    def begin(
        cls, session_id: Any, messages: Any, last_activity: Any, if_version: int | None
    ) -> _Write:
        session_id, messages, last_activity = _check_arguments(
            session_id, messages, last_activity, if_version
        )
        cached = message_cache.get(session_id)
        return cls(session_id, messages, last_activity, if_version, utc_now(), new_token(), cached)

    @property
    def hoped(self) -> CachedMessages | None:
        """The copy to try the one-statement write with: usually this process holds
        the stored list (an `if_version` write checks the version instead)."""
        return self.cached if self.if_version is None else None

    async def touch_if_hoped(self, conn: DB) -> int | None:
        """The new version if the one-statement write against `hoped` went through."""
        hoped = self.hoped
        if hoped is None:
            return None
        return await _touch_if_current(
            conn, self.session_id, hoped.token, self.messages, self.last_activity, self.token
        )

    async def open(self, conn: DB) -> tuple[dict[str, Any], CachedMessages | None]:
        """Lock (creating) the row: its state, and the copy if it is still current."""
        state = await _open_for_write(
            conn, self.session_id, self.now, self.last_activity, self.if_version
        )
        trusted = self.cached is not None and self.cached.token == state["messages_token"]
        if self.cached is not None and not trusted:
            MESSAGE_CACHE_STALE.inc()
        return state, self.cached if trusted else None

    async def touch(self, conn: DB, state: dict[str, Any]) -> int:
        return await _touch(
            conn, self.session_id, state, self.messages, self.last_activity, self.token
        )

    async def finish(self, conn: DB, tail: list[NewMessage], version: int) -> None:
        await insert_messages(conn, tail)
        await _record_saved(conn, self.session_id, version)


async def _save(
    db: DB,
    session_id: Any,
    messages: Any,
    last_activity: Any,
    if_version: int | None,
    schema: type[MessageIn],
) -> int:
    write = _Write.begin(session_id, messages, last_activity, if_version)
    session_id, messages, now = write.session_id, write.messages, write.now

    # Usually this process holds the stored list: what to write is known (and
    # validated, before any SQL) from it, and one conditional UPDATE checks it.
    current = write.hoped
    if current is not None:
        keep = _common_prefix(current.messages, messages)
        tail = _tail(session_id, messages, keep, now, schema)
    async with _atomic(db) as conn:
        version = await write.touch_if_hoped(conn)
        if version is None:
            state, current = await write.open(conn)
            if current is not None:
                keep = _common_prefix(current.messages, messages)
            else:
                stored = await stored_messages(conn, session_id)
                both = min(len(stored), len(messages))
                keep = next(
                    (i for i in range(both) if not same_as_stored(messages[i], stored[i])), both
                )
            tail = _tail(session_id, messages, keep, now, schema)
            version = await write.touch(conn, state)
        if current is not None:
            stored_count = len(current.messages)
            # Appending (the usual case) extends the cached list in place, after commit.
            kept = current.messages if keep == stored_count else current.messages[:keep]
        else:
            stored_count = len(stored)
            kept = [project(m) for m in messages[:keep]]
        if keep < stored_count:
            await delete_messages_from(conn, session_id, keep)
        await write.finish(conn, tail, version)
    MESSAGES_PER_SAVE.observe(len(tail))

    # Only after our transaction (or savepoint) ended well; if an outer one rolls
    # back later, this token never reaches the database and the entry is ignored.
    kept.extend(m.projection for m in tail)
    message_cache.put(session_id, write.token, kept)
    return version


async def _append(
    db: DB,
    session_id: Any,
    messages: Any,
    last_activity: Any,
    if_version: int | None,
    schema: type[MessageIn],
) -> int:
    write = _Write.begin(session_id, messages, last_activity, if_version)
    session_id, messages, now = write.session_id, write.messages, write.now

    def rows(start: int) -> list[NewMessage]:
        return [
            new_message(session_id, start + i, raw, now, index=i, schema=schema)
            for i, raw in enumerate(messages)
        ]

    # As in `_save`: with this process's copy current, the next position is its length.
    current = write.hoped
    if current is not None:
        tail = rows(len(current.messages))
    async with _atomic(db) as conn:
        version = await write.touch_if_hoped(conn)
        if version is None:
            state, current = await write.open(conn)
            tail = rows(await next_position(conn, session_id))
            version = await write.touch(conn, state)
        await write.finish(conn, tail, version)
    MESSAGES_PER_SAVE.observe(len(tail))

    if current is not None:
        current.messages.extend(m.projection for m in tail)
        message_cache.put(session_id, write.token, current.messages)
    else:
        message_cache.discard(session_id)
    return version
