"""The raw-driver floor: hand-written SQL on aiosqlite / asyncpg, on this project's
schema (the tables its Aerich migrations create), doing the least any correct
implementation must do:

* save = one transaction: INSERT the new message at the next position (the caller's
  list length tells it) + UPDATE the session's last_activity (and version, which this
  schema keeps in the same row, so the UPDATE costs the same);
* load = SELECT the session, SELECT its messages ordered by position, build the same
  dicts as `load_session` (JSON parsed, datetimes aware UTC);
* approval save + list = INSERT ... ON CONFLICT DO NOTHING + SELECT the pending ones.

SQLite runs as this project's engine does: one connection per process with the same
pragmas, `BEGIN IMMEDIATE`, and an asyncio lock serializing its use.
PostgreSQL uses an asyncpg pool of the size of the project's default (10).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg

from benchmarks.data import Message

__all__ = [
    "MESSAGE_COLUMNS",
    "PRAGMAS",
    "AsyncpgPool",
    "PostgresFloor",
    "SqliteFloor",
    "make_floor",
]

PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "cache_size=-64000",
    "temp_store=MEMORY",
    "busy_timeout=30000",
    "foreign_keys=ON",
)
MESSAGE_COLUMNS = (
    "session_id, position, role, content, timestamp, name, tool_call_id, tool_calls, "
    "token_count, metadata"
)
_APPROVAL_COLUMNS = "call_id, session_id, tool_name, arguments, reason, created_at, status"
_SQL = {
    "insert_session": "INSERT INTO sessions (id, title, created_at, last_activity, is_active) "
    "VALUES ({0}, {1}, {2}, {3}, TRUE)",
    "insert_message": f"INSERT INTO messages ({MESSAGE_COLUMNS}) "
    "VALUES ({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9})",
    "touch_session": "UPDATE sessions SET last_activity = {0}, version = version + 1 "
    "WHERE id = {1}",
    "select_session": "SELECT created_at, last_activity FROM sessions "
    "WHERE id = {0} AND deleted_at IS NULL",
    "select_messages": "SELECT role, content, name, tool_call_id, tool_calls FROM messages "
    "WHERE session_id = {0} ORDER BY position",
    "insert_approval": f"INSERT INTO pending_approvals ({_APPROVAL_COLUMNS}) "
    "VALUES ({0}, {1}, {2}, {3}, NULL, {4}, 'pending') ON CONFLICT DO NOTHING",
    "select_pending": "SELECT call_id, tool_name, arguments, reason, created_at "
    "FROM pending_approvals WHERE session_id = {0} AND status = 'pending' "
    "ORDER BY created_at, id",
}
_SQLITE = {k: v.format(*["?"] * 10) for k, v in _SQL.items()}
_POSTGRES = {k: v.format(*[f"${i}" for i in range(1, 11)]) for k, v in _SQL.items()}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _message_row(session_id: str, position: int, m: Message, now: Any) -> tuple[Any, ...]:
    return (
        session_id,
        position,
        m["role"],
        m.get("content"),
        now,
        m.get("name"),
        m.get("tool_call_id"),
        _json(m.get("tool_calls")),
        m.get("token_count"),
        _json(m.get("metadata")),
    )


def _message_dict(row: Sequence[Any]) -> dict[str, Any]:
    role, content, name, tool_call_id, tool_calls = row
    out: dict[str, Any] = {"role": role, "content": content}
    if name is not None:
        out["name"] = name
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    if tool_calls is not None:
        out["tool_calls"] = json.loads(tool_calls)
    return out


def _title(messages: list[Message]) -> str | None:
    return next(
        (m["content"][:500] for m in messages if m["role"] == "user" and m["content"]), None
    )


class SqliteFloor:
    name = "floor"

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self._path, isolation_level=None)
        for pragma in PRAGMAS:
            await self._conn.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[aiosqlite.Connection]:
        assert self._conn is not None, "call open() first"
        async with self._lock:
            yield self._conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._use() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            try:
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _now() -> str:
        # The text Tortoise stores for an aware UTC datetime on SQLite.
        return datetime.now(UTC).isoformat(sep=" ")

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        now = self._now()
        rows = [_message_row(session_id, i, m, now) for i, m in enumerate(messages)]
        async with self._transaction() as conn:
            await conn.execute(_SQLITE["insert_session"], (session_id, _title(messages), now, now))
            await conn.executemany(_SQLITE["insert_message"], rows)

    async def save(self, session_id: str, messages: list[Message]) -> None:
        now = self._now()
        row = _message_row(session_id, len(messages) - 1, messages[-1], now)
        async with self._transaction() as conn:
            await conn.execute(_SQLITE["insert_message"], row)
            await conn.execute(_SQLITE["touch_session"], (now, session_id))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        async with self._use() as conn:
            found = list(await conn.execute_fetchall(_SQLITE["select_session"], (session_id,)))
            if not found:
                return None
            rows = await conn.execute_fetchall(_SQLITE["select_messages"], (session_id,))
        created_at, last_activity = found[0]
        return {
            "session_id": session_id,
            "messages": [_message_dict(r) for r in rows],
            "last_activity": datetime.fromisoformat(last_activity),
            "created_at": datetime.fromisoformat(created_at),
        }

    async def save_approval(
        self, session_id: str, call_id: str, tool_name: str, arguments: dict[str, Any]
    ) -> None:
        values = (call_id, session_id, tool_name, _json(arguments), self._now())
        async with self._use() as conn:
            await conn.execute(_SQLITE["insert_approval"], values)

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]:
        async with self._use() as conn:
            rows = await conn.execute_fetchall(_SQLITE["select_pending"], (session_id,))
        return [
            {
                "call_id": call_id,
                "tool_name": tool_name,
                "arguments": json.loads(arguments),
                "reason": reason,
                "created_at": datetime.fromisoformat(created_at),
            }
            for call_id, tool_name, arguments, reason, created_at in rows
        ]


class AsyncpgPool:
    """An asyncpg pool opened and closed with its owner (the floors on PostgreSQL)."""

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "call open() first"
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class PostgresFloor(AsyncpgPool):
    name = "floor"

    async def seed(self, session_id: str, messages: list[Message]) -> None:
        now = datetime.now(UTC)
        rows = [_message_row(session_id, i, m, now) for i, m in enumerate(messages)]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_POSTGRES["insert_session"], session_id, _title(messages), now, now)
            await conn.executemany(_POSTGRES["insert_message"], rows)

    async def save(self, session_id: str, messages: list[Message]) -> None:
        now = datetime.now(UTC)
        row = _message_row(session_id, len(messages) - 1, messages[-1], now)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_POSTGRES["insert_message"], *row)
            await conn.execute(_POSTGRES["touch_session"], now, session_id)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            found = await conn.fetchrow(_POSTGRES["select_session"], session_id)
            if found is None:
                return None
            rows = await conn.fetch(_POSTGRES["select_messages"], session_id)
        return {
            "session_id": session_id,
            "messages": [_message_dict(r) for r in rows],
            "last_activity": found["last_activity"],
            "created_at": found["created_at"],
        }

    async def save_approval(
        self, session_id: str, call_id: str, tool_name: str, arguments: dict[str, Any]
    ) -> None:
        values = (call_id, session_id, tool_name, _json(arguments), datetime.now(UTC))
        async with self.pool.acquire() as conn:
            await conn.execute(_POSTGRES["insert_approval"], *values)

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_POSTGRES["select_pending"], session_id)
        return [
            {
                "call_id": r["call_id"],
                "tool_name": r["tool_name"],
                "arguments": json.loads(r["arguments"]),
                "reason": r["reason"],
                "created_at": r["created_at"],
            }
            for r in rows
        ]


def make_floor(url: str) -> SqliteFloor | PostgresFloor:
    """The floor for a database URL of the forms the suite builds."""
    if url.startswith("sqlite:///"):
        return SqliteFloor(url.removeprefix("sqlite:///"))
    return PostgresFloor(url)
