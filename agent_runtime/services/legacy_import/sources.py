"""Reading a legacy agent-runtime database (the SQLAlchemy schema).

The legacy database is read directly with aiosqlite or asyncpg, read-only and from
one snapshot (a read transaction; REPEATABLE READ READ ONLY on PostgreSQL), so a
legacy service still writing meanwhile cannot make the import inconsistent. The
variant is detected from the columns: a `sessions.session_id` column means
variant A (the caller's id is `sessions.session_id`; `messages.session_db_id` and
`agent_contexts.session_db_id` point at the uuid `sessions.id`), otherwise
variant B (`sessions.id` is the caller's id). `agent_contexts`, `agent_switches`
and `pending_approvals` may be missing (older deployments): nothing to copy then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiosqlite
import asyncpg

from agent_runtime.db.urls import DatabaseURL, parse_db_url
from agent_runtime.errors import ConfigurationError, LegacyImportError

__all__ = ["OPTIONAL_TABLES", "LegacySource", "first_line", "open_legacy"]

_FETCH = 2000  # rows per round trip when streaming from the legacy database

# Per table: columns that must exist, then the ones read when present (else NULL).
_REQUIRED = {
    "sessions": ("id", "created_at", "last_activity"),
    "messages": ("session_db_id", "role", "content", "timestamp"),
    "agent_contexts": ("id", "session_db_id", "current_agent", "created_at"),
    "agent_switches": ("context_db_id", "to_agent", "switched_at"),
    "pending_approvals": ("call_id", "session_id", "tool_name", "created_at"),
}
_COLUMNS = {
    "sessions": (
        "id",
        "session_id",
        "title",
        "description",
        "created_at",
        "last_activity",
        "is_active",
        "deleted_at",
    ),
    "messages": (
        "session_db_id",
        "id",
        "role",
        "content",
        "timestamp",
        "name",
        "tool_call_id",
        "tool_calls",
        "token_count",
        "metadata_json",
    ),
    "agent_contexts": (
        "id",
        "session_db_id",
        "current_agent",
        "created_at",
        "updated_at",
        "switch_count",
        "metadata_json",
    ),
    "agent_switches": (
        "context_db_id",
        "id",
        "from_agent",
        "to_agent",
        "switched_at",
        "reason",
        "metadata_json",
    ),
    "pending_approvals": (
        "id",
        "call_id",
        "session_id",
        "tool_name",
        "arguments",
        "reason",
        "created_at",
        "status",
    ),
}
OPTIONAL_TABLES = ("agent_contexts", "agent_switches", "pending_approvals")


def _decode_text(raw: bytes) -> str:
    # Invalid UTF-8 must not abort the whole read: it surfaces as lone surrogates,
    # which `check_text` refuses, so the row is reported and skipped.
    return raw.decode("utf-8", "surrogateescape")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_SOURCE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


class LegacySource:
    """A read-only snapshot of a legacy database (open it with `open_legacy`)."""

    dialect: str  # "sqlite" or "postgres"
    tie: str  # the insertion-order column that breaks ties: rowid or ctid

    def __init__(self, display: str) -> None:
        self.display = display
        self.columns: dict[str, set[str]] = {}

    @property
    def variant(self) -> str:
        return "A" if "session_id" in self.columns.get("sessions", set()) else "B"

    def has(self, table: str) -> bool:
        return table in self.columns

    def select(self, table: str, order_by: str = "") -> str:
        have = self.columns[table]
        columns = ", ".join(f'"{c}"' if c in have else "NULL" for c in _COLUMNS[table])
        order = f" ORDER BY {order_by}" if order_by else ""
        return f'SELECT {columns} FROM "{table}"{order}'

    async def count_sessions(self) -> int:
        rows = await self.fetch('SELECT COUNT(*) FROM "sessions"')
        return int(rows[0][0])

    async def fetch(self, query: str) -> list[Sequence[Any]]:
        try:
            return await self._fetch(query)
        except _SOURCE_ERRORS as exc:
            raise LegacyImportError(
                f"reading the legacy database {self.display} failed: {first_line(exc)}"
            ) from None

    async def stream(self, query: str) -> AsyncIterator[Sequence[Any]]:
        rows = self._stream(query)
        try:
            while True:
                try:
                    row = await anext(rows)
                except StopAsyncIteration:
                    return
                except _SOURCE_ERRORS as exc:
                    raise LegacyImportError(
                        f"reading the legacy database {self.display} failed: {first_line(exc)}"
                    ) from None
                yield row
        finally:
            with suppress(*_SOURCE_ERRORS):
                await rows.aclose()

    async def _fetch(self, query: str) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _stream(self, query: str) -> AsyncGenerator[Sequence[Any], None]:
        raise NotImplementedError

    async def _tables(self) -> dict[str, set[str]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def inspect(self) -> None:
        """Read the schema; refuse anything that is not a legacy agent-runtime database."""
        try:
            tables = await self._tables()
        except _SOURCE_ERRORS as exc:
            raise LegacyImportError(
                f"cannot read the legacy database {self.display}: {first_line(exc)}"
            ) from None
        problems = []
        for table, required in _REQUIRED.items():
            if table not in tables:
                if table not in OPTIONAL_TABLES:
                    problems.append(f"no {table} table")
                continue
            missing = [c for c in required if c not in tables[table]]
            if missing:
                problems.append(f"{table} has no {', '.join(missing)} column")
        if problems:
            hint = ""
            if "session_id" in tables.get("messages", set()) and "position" in tables.get(
                "messages", set()
            ):
                hint = " (it looks like this service's own schema, not the legacy one)"
            raise LegacyImportError(
                f"{self.display} is not a legacy agent-runtime database: "
                f"{'; '.join(problems)}{hint}"
            )
        self.columns = {t: tables[t] for t in _REQUIRED if t in tables}


class _SqliteSource(LegacySource):
    dialect = "sqlite"
    tie = "rowid"

    def __init__(self, display: str, conn: aiosqlite.Connection) -> None:
        super().__init__(display)
        self._conn = conn

    async def _fetch(self, query: str) -> list[Sequence[Any]]:
        return list(await self._conn.execute_fetchall(query))

    async def _stream(self, query: str) -> AsyncGenerator[Sequence[Any], None]:
        async with self._conn.execute(query) as cursor:
            while rows := await cursor.fetchmany(_FETCH):
                for row in rows:
                    yield row

    async def _tables(self) -> dict[str, set[str]]:
        # One read transaction for the whole import: every query sees one snapshot.
        await self._conn.execute("BEGIN")
        names = await self._conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
        tables = {}
        for (name,) in names:
            if name in _REQUIRED:
                info = await self._conn.execute_fetchall(f'PRAGMA table_info("{name}")')
                tables[name] = {row[1] for row in info}
        return tables

    async def close(self) -> None:
        await self._conn.close()


class _PostgresSource(LegacySource):
    dialect = "postgres"
    tie = "ctid"

    def __init__(self, display: str, conn: asyncpg.Connection) -> None:
        super().__init__(display)
        self._conn = conn

    async def _fetch(self, query: str) -> list[Sequence[Any]]:
        return list(await self._conn.fetch(query))

    async def _stream(self, query: str) -> AsyncGenerator[Sequence[Any], None]:
        async for row in self._conn.cursor(query, prefetch=_FETCH):
            yield row

    async def _tables(self) -> dict[str, set[str]]:
        # One snapshot for the whole import; never a write to the legacy database.
        await self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        rows = await self._conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
            list(_REQUIRED),
        )
        tables: dict[str, set[str]] = {}
        for row in rows:
            tables.setdefault(row["table_name"], set()).add(row["column_name"])
        return tables

    async def close(self) -> None:
        with suppress(Exception):
            await self._conn.close(timeout=5)


async def _open_sqlite(database: DatabaseURL) -> LegacySource:
    path = database.sqlite_path
    if path is None:
        raise LegacyImportError("the legacy database cannot be in memory: give its file's path")
    if not path.is_file():
        raise LegacyImportError(f"no legacy database at {path}: no such file")
    try:
        # mode=ro: never create, change or lock the legacy file for writing.
        conn = await aiosqlite.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LegacyImportError(
            f"cannot open the legacy database {path}: {first_line(exc)}"
        ) from None
    conn.text_factory = _decode_text
    return _SqliteSource(database.display(), conn)


async def _open_postgres(database: DatabaseURL) -> LegacySource:
    try:
        conn = await asyncpg.connect(
            **database.asyncpg_connect_args(),
            server_settings={
                "application_name": "agent-runtime import-legacy",
                "default_transaction_read_only": "on",
            },
        )
    except Exception as exc:  # any failure to connect: refused, auth, no database, TLS
        raise LegacyImportError(
            f"cannot reach the legacy database at {database.display()}: {first_line(exc)}"
        ) from None
    return _PostgresSource(database.display(), conn)


@asynccontextmanager
async def open_legacy(url: str, *, connect_timeout: float = 10.0) -> AsyncIterator[LegacySource]:
    """Open the legacy database at `url` (any URL `parse_db_url` accepts), read-only.

    Raises `LegacyImportError` (one line, never the password) if the URL is bad, the
    database cannot be reached, or it is not a legacy agent-runtime database.
    """
    try:
        database = parse_db_url(url, connect_timeout=connect_timeout)
    except ConfigurationError as exc:
        raise LegacyImportError(
            str(exc).replace("in AGENT_RUNTIME__DB_URL", "in the legacy database URL")
        ) from None
    source = await (_open_sqlite(database) if database.is_sqlite else _open_postgres(database))
    try:
        await source.inspect()
        yield source
    finally:
        await source.close()
