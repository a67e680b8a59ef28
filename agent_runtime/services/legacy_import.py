"""Import a legacy agent-runtime database (the SQLAlchemy schema) into this service's.

The legacy database is read directly with aiosqlite or asyncpg, read-only and from
one snapshot (a read transaction; REPEATABLE READ READ ONLY on PostgreSQL), so a
legacy service still writing meanwhile cannot make the import inconsistent. The
variant is detected from the columns: a `sessions.session_id` column means
variant A (the caller's id is `sessions.session_id`; `messages.session_db_id` and
`agent_contexts.session_db_id` point at the uuid `sessions.id`), otherwise
variant B (`sessions.id` is the caller's id). `agent_contexts`, `agent_switches`
and `pending_approvals` may be missing (older deployments): nothing to copy then.

What is copied, per session, in one transaction (all or nothing):

* the session: title, description, created_at, last_activity, is_active,
  deleted_at (a soft-deleted session stays soft-deleted), with `version` 1 and a
  fresh random `messages_token`;
* its messages in the order the legacy `load_session` returned them:
  `ORDER BY timestamp`, ties in insertion order (rowid on SQLite, ctid on
  PostgreSQL), stored at positions 0..n-1; `tool_calls` and `metadata_json` (JSON
  strings) become JSON values;
* its agent context, `last_switch_at` set to the newest switch time (if any), and
  its switches in history order (switched_at, ties in insertion order).

Naive legacy datetimes are UTC wall-clock values (the legacy wrote
`datetime.now(timezone.utc)` into naive columns) and are stored as aware UTC.
Empty strings in `name`, `tool_call_id`, `tool_calls` and `metadata_json` are
imported as NULL: the legacy `load_session` left falsy values out of a message, so
`load_session` here returns exactly what the legacy one did.

Approvals are copied after the sessions (they have no foreign key, as before; in
variant A a `session_id` holding a legacy uuid `sessions.id` is translated to the
caller's id). The legacy store had no unique `call_id`, so one call may have
several rows. **Merge rule** for the rows of one `call_id`, taken oldest first
(created_at, ties in insertion order):

* the content (session_id, tool_name, arguments, reason, created_at) is the
  oldest row's;
* the status is the decision if any row carries one (approved, rejected,
  cancelled); rows with different decisions resolve to the most cautious one:
  rejected, then cancelled, then approved (the conflict is reported); without a
  decision, the oldest row's status;
* `decided_at` / `decided_by` stay NULL: the legacy store did not record them.

Every merge is reported (call_id, rows merged, resulting status, and whether
the rows' contents differed).

Idempotent: a session whose id is already in the target is skipped (not
compared, not changed) and reported; an approval whose `call_id` exists is
skipped. A second run therefore imports nothing. With `dry_run` the same
validation and counting happen, and nothing is written.

Rows this service cannot store are reported and skipped, never fatal: a role
outside the legacy CHECK, NUL characters or invalid UTF-8 (PostgreSQL cannot
store them; both backends refuse them alike), text over its column's length,
unparsable datetimes or JSON, JSON of the wrong shape (tool_calls must be a list
of objects, metadata and arguments objects), negative or out-of-range integers,
rows pointing at a missing parent. An invalid session row is skipped with its
messages, context and switches; an invalid message, switch or approval row alone.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import aiosqlite
import asyncpg

from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.db.migrations import pending_on_connection
from agent_runtime.db.urls import DatabaseURL, parse_db_url
from agent_runtime.errors import (
    AgentRuntimeError,
    ConfigurationError,
    InvalidInputError,
    SchemaOutOfDateError,
)
from agent_runtime.services._common import DB, ID_MAX, TITLE_MAX, atomic, check_json, check_text
from agent_runtime.services._sql import json_dumps, sql
from agent_runtime.services.message_cache import message_cache
from agent_runtime.timeutils import parse_datetime
from models import ApprovalStatus, MessageRole

__all__ = [
    "ImportReport",
    "InvalidRow",
    "LegacyImportError",
    "LegacySource",
    "MergedApproval",
    "check_target_schema",
    "import_legacy",
    "open_legacy",
]

NAME_MAX = 255
AGENT_MAX = 100
INT_MAX = 2**31 - 1
_BATCH = 500  # ids per IN (...) and approvals per transaction: under every parameter limit
_FETCH = 2000  # rows per round trip when streaming from the legacy database

_ROLES = frozenset(r.value for r in MessageRole)
_STATUSES = frozenset(s.value for s in ApprovalStatus)
# Most cautious first: the decision kept when duplicate rows disagree.
_DECISIONS = ("rejected", "cancelled", "approved")

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
_OPTIONAL_TABLES = ("agent_contexts", "agent_switches", "pending_approvals")

# Target statements (`?` placeholders, converted per dialect by `sql`).
_INSERT_SESSION = (
    "INSERT INTO sessions (id, title, description, created_at, last_activity, is_active, "
    "deleted_at, version, messages_token) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_INSERT_MESSAGE = (
    'INSERT INTO messages (session_id, "position", role, content, "timestamp", name, '
    "tool_call_id, tool_calls, token_count, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CONTEXT = (
    "INSERT INTO agent_contexts (session_id, current_agent, created_at, updated_at, "
    "last_switch_at, switch_count, metadata) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_INSERT_SWITCH = (
    'INSERT INTO agent_switches (context_id, "position", from_agent, to_agent, switched_at, '
    "reason, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_APPROVAL = (
    "INSERT INTO pending_approvals (call_id, session_id, tool_name, arguments, reason, "
    "created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING"
)


class LegacyImportError(AgentRuntimeError):
    """The legacy database cannot be read: bad URL, unreachable, or not a legacy schema."""

    code = "legacy_import_error"


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class InvalidRow:
    """Legacy rows skipped because this service cannot store them."""

    table: str
    row: str  # which row: its legacy id, or a description of a group of rows
    reason: str
    rows: int = 1  # how many legacy rows this entry stands for

    def __str__(self) -> str:
        return f"{self.table} {self.row}: {self.reason}"


@dataclass(frozen=True)
class MergedApproval:
    """Several legacy rows of one call_id, imported as one approval."""

    call_id: str
    rows: int
    status: str
    note: str = ""  # what differed between the rows, if anything

    def __str__(self) -> str:
        text = f"call_id {self.call_id!r}: {self.rows} rows merged into one ({self.status})"
        return f"{text}; {self.note}" if self.note else text


@dataclass
class ImportReport:
    """What an import did (or, with `dry_run`, would do)."""

    source: str
    variant: str
    dry_run: bool
    sessions_seen: int = 0
    sessions_imported: int = 0
    sessions_present: list[str] = field(default_factory=list)  # skipped: already in target
    messages: int = 0
    contexts: int = 0
    switches: int = 0
    approvals: int = 0
    approvals_present: int = 0  # skipped: call_id already in target
    merged: list[MergedApproval] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    # (session id, or a batch of approvals; the error): not written, retried by a re-run
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        return sum(entry.rows for entry in self.invalid)

    @property
    def merged_rows(self) -> int:
        """Extra legacy rows folded into merged approvals."""
        return sum(m.rows - 1 for m in self.merged)


ProgressCallback = Callable[[int], Any]  # called with the number of sessions just handled


# --------------------------------------------------------------------------- reading


def _decode_text(raw: bytes) -> str:
    # Invalid UTF-8 must not abort the whole read: it surfaces as lone surrogates,
    # which `check_text` refuses, so the row is reported and skipped.
    return raw.decode("utf-8", "surrogateescape")


def _first_line(exc: BaseException) -> str:
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
                f"reading the legacy database {self.display} failed: {_first_line(exc)}"
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
                        f"reading the legacy database {self.display} failed: {_first_line(exc)}"
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
                f"cannot read the legacy database {self.display}: {_first_line(exc)}"
            ) from None
        problems = []
        for table, required in _REQUIRED.items():
            if table not in tables:
                if table not in _OPTIONAL_TABLES:
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
            f"cannot open the legacy database {path}: {_first_line(exc)}"
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
            f"cannot reach the legacy database at {database.display()}: {_first_line(exc)}"
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


# --------------------------------------------------------------------------- validation


class _Invalid(Exception):
    """A legacy value this service cannot store; the message says why."""


def _text(
    value: Any,
    what: str,
    *,
    max_length: int | None = None,
    required: bool = False,
    empty_is_null: bool = False,
) -> str | None:
    if value is None or (empty_is_null and value == ""):
        if required:
            raise _Invalid(f"{what} is missing")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{what} is not text ({type(value).__name__})")
    if required and not value:
        raise _Invalid(f"{what} is empty")
    if max_length is not None and len(value) > max_length:
        raise _Invalid(f"{what} is longer than {max_length} characters")
    try:
        return check_text(value, what)
    except InvalidInputError as exc:
        raise _Invalid(f"{what} contains a NUL character or invalid UTF-8") from exc


def _stamp(value: Any, what: str, *, required: bool = True) -> datetime | None:
    """A legacy datetime (naive = UTC; ISO text on SQLite) as aware UTC."""
    if value is None:
        if required:
            raise _Invalid(f"{what} is missing")
        return None
    if isinstance(value, str | datetime):
        try:
            return parse_datetime(value, what)
        except InvalidInputError:
            pass
    raise _Invalid(f"{what} is not a datetime: {value!r:.60}")


def _json(value: Any, what: str, shape: type) -> str | None:
    """A legacy JSON string (or value) as the JSON text to store, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Invalid(f"{what} is not valid JSON") from None
        if value is None:
            return None
    if shape is list:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise _Invalid(f"{what} must be a JSON list of objects")
    elif not isinstance(value, dict):
        raise _Invalid(f"{what} must be a JSON object")
    try:
        check_json(value, what)
        return json_dumps(value)
    except (InvalidInputError, ValueError, TypeError) as exc:
        raise _Invalid(str(exc)) from None


def _count(value: Any, what: str, *, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise _Invalid(f"{what} must be an integer from 0 to {INT_MAX}, got {value!r:.40}")
    return value


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "true", "false", "t", "f"):
        return value.lower() in ("1", "true", "t")
    raise _Invalid(f"{what} is not a boolean: {value!r:.40}")


def _row_id(value: Any) -> str:
    return "(no id)" if value is None else str(value)


@dataclass
class _Session:
    db_id: Any  # legacy sessions.id
    caller_id: str
    values: list[Any]  # title, description, created_at, last_activity, is_active, deleted_at


def _session(row: Sequence[Any], variant: str) -> _Session:
    db_id, session_id, title, description, created_at, last_activity, is_active, deleted_at = row
    caller = _text(
        session_id if variant == "A" else db_id,
        "session_id" if variant == "A" else "id",
        max_length=ID_MAX,
        required=True,
    )
    assert caller is not None
    deleted = _stamp(deleted_at, "deleted_at", required=False)
    return _Session(
        db_id,
        caller,
        [
            _text(title, "title", max_length=TITLE_MAX),
            _text(description, "description"),
            _stamp(created_at, "created_at"),
            _stamp(last_activity, "last_activity"),
            deleted is None if is_active is None else _flag(is_active, "is_active"),
            deleted,
        ],
    )


def _message(row: Sequence[Any]) -> tuple[Any, ...]:
    """A legacy message row as (role, content, timestamp, name, tool_call_id,
    tool_calls, token_count, metadata), ready to insert after session and position."""
    _, _, role, content, stamp, name, tool_call_id, tool_calls, tokens, metadata = row
    if role not in _ROLES:
        raise _Invalid(f"role {role!r:.40} is not one of {', '.join(sorted(_ROLES))}")
    return (
        role,
        _text(content, "content"),
        _stamp(stamp, "timestamp"),
        _text(name, "name", max_length=NAME_MAX, empty_is_null=True),
        _text(tool_call_id, "tool_call_id", max_length=NAME_MAX, empty_is_null=True),
        _json(tool_calls, "tool_calls", list),
        _count(tokens, "token_count"),
        _json(metadata, "metadata_json", dict),
    )


@dataclass
class _Context:
    legacy_id: Any
    values: list[Any]  # current_agent, created_at, updated_at, switch_count, metadata
    switches: list[tuple[Any, ...]] = field(default_factory=list)  # in history order


def _context(row: Sequence[Any]) -> _Context:
    legacy_id, _, agent, created_at, updated_at, switch_count, metadata = row
    created = _stamp(created_at, "created_at")
    return _Context(
        legacy_id,
        [
            _text(agent, "current_agent", max_length=AGENT_MAX, required=True),
            created,
            _stamp(updated_at, "updated_at", required=False) or created,
            _count(switch_count, "switch_count", default=0),
            _json(metadata, "metadata_json", dict),
        ],
    )


def _switch(row: Sequence[Any]) -> tuple[Any, ...]:
    """(from_agent, to_agent, switched_at, reason, metadata)."""
    _, _, from_agent, to_agent, switched_at, reason, metadata = row
    return (
        _text(from_agent, "from_agent", max_length=AGENT_MAX),
        _text(to_agent, "to_agent", max_length=AGENT_MAX, required=True),
        _stamp(switched_at, "switched_at"),
        _text(reason, "reason"),
        _json(metadata, "metadata_json", dict),
    )


@dataclass(frozen=True)
class _Approval:
    call_id: str
    session_id: str
    tool_name: str
    arguments: str  # JSON text
    reason: str | None
    created_at: datetime
    status: str

    @property
    def content(self) -> tuple[Any, ...]:
        return (self.session_id, self.tool_name, self.arguments, self.reason)


def _approval(row: Sequence[Any], caller_ids: dict[Any, str], variant: str) -> _Approval:
    _, call_id, session_id, tool_name, arguments, reason, created_at, status = row
    status = "pending" if status is None else status
    if status not in _STATUSES:
        raise _Invalid(f"status {status!r:.40} is not one of {', '.join(sorted(_STATUSES))}")
    if variant == "A" and session_id in caller_ids:
        session_id = caller_ids[session_id]  # a legacy uuid sessions.id: the caller's id
    created = _stamp(created_at, "created_at")
    assert created is not None
    return _Approval(
        call_id=str(_text(call_id, "call_id", max_length=ID_MAX, required=True)),
        session_id=str(_text(session_id, "session_id", max_length=ID_MAX, required=True)),
        tool_name=str(_text(tool_name, "tool_name", max_length=NAME_MAX, required=True)),
        arguments=_json(arguments, "arguments", dict) or "{}",
        reason=_text(reason, "reason"),
        created_at=created,
        status=status,
    )


def _merge(rows: list[_Approval]) -> tuple[_Approval, MergedApproval | None]:
    """Rows of one call_id, oldest first, as one approval (the module's merge rule)."""
    oldest = rows[0]
    if len(rows) == 1:
        return oldest, None
    decisions = {r.status for r in rows if r.status in _DECISIONS}
    status = next((d for d in _DECISIONS if d in decisions), oldest.status)
    notes = []
    if len(decisions) > 1:
        notes.append(f"conflicting decisions {', '.join(sorted(decisions))}: kept {status}")
    if any(r.content != oldest.content for r in rows[1:]):
        notes.append("rows differ in content: kept the oldest row's")
    return (
        replace(oldest, status=status),
        MergedApproval(oldest.call_id, len(rows), status, "; ".join(notes)),
    )


# --------------------------------------------------------------------------- writing


def _new_token() -> int:
    return secrets.randbits(62) + 1  # as save.py: never 0


async def _existing(db: DB, table: str, column: str, values: Sequence[str]) -> set[str]:
    """Which of `values` the target's `table.column` already holds."""
    found: set[str] = set()
    for start in range(0, len(values), _BATCH):
        chunk = list(values[start : start + _BATCH])
        marks = ", ".join("?" * len(chunk))
        _, rows = await db.execute_query(
            sql(db, f"SELECT {column} FROM {table} WHERE {column} IN ({marks})"), chunk
        )
        found.update(row[0] for row in rows)
    return found


async def check_target_schema(db: DB) -> None:
    """Raise `SchemaOutOfDateError` unless every migration is applied to `db`."""
    pending = await pending_on_connection(db)
    if pending:
        raise SchemaOutOfDateError(
            f"the target database schema is behind: {len(pending)} migration(s) pending "
            f"({pending[0]} .. {pending[-1]}); run `agent-runtime migrate` first"
        )


class _Importer:
    def __init__(
        self, db: DB, source: LegacySource, dry_run: bool, progress: ProgressCallback | None
    ) -> None:
        self.db = db
        self.source = source
        self.dry_run = dry_run
        self.progress = progress
        self.report = ImportReport(source.display, source.variant, dry_run)
        self.sessions: dict[Any, _Session | None] = {}  # legacy sessions.id -> row (None: invalid)
        self.contexts: dict[Any, _Context | None] = {}  # legacy session_db_id -> context
        self.caller_ids: dict[Any, str] = {}  # legacy sessions.id -> caller's id (valid ones)
        self.callers: set[str] = set()
        self.present: set[str] = set()

    def invalid(self, table: str, row: Any, reason: str, rows: int = 1) -> None:
        self.report.invalid.append(InvalidRow(table, _row_id(row), reason, rows))

    def advance(self) -> None:
        self.report.sessions_seen += 1
        if self.progress is not None:
            self.progress(1)

    async def run(self) -> ImportReport:
        self.report.missing_tables = [t for t in _OPTIONAL_TABLES if not self.source.has(t)]
        await self.read_sessions()
        await self.read_contexts()
        self.present = await _existing(self.db, "sessions", "id", list(self.callers))

        tie = self.source.tie
        query = self.source.select("messages", f'"session_db_id", "timestamp", {tie}')
        group: list[Sequence[Any]] = []
        current: Any = None
        async for row in self.source.stream(query):
            if group and row[0] != current:
                await self.import_group(current, group)
                group = []
            current = row[0]
            group.append(row)
        if group:
            await self.import_group(current, group)
        # Sessions without messages.
        for db_id in list(self.sessions):
            await self.import_group(db_id, [])
        for db_id, context in self.contexts.items():  # contexts of no session
            rows = 1 + (len(context.switches) if context else 0)
            self.invalid("agent_contexts", f"of session_db_id {db_id!r}", "no such session", rows)

        await self.import_approvals()
        return self.report

    async def read_sessions(self) -> None:
        tie = self.source.tie
        for row in await self.source.fetch(self.source.select("sessions", tie)):
            db_id = row[0]
            try:
                session = _session(row, self.source.variant)
                if session.caller_id in self.callers:
                    raise _Invalid(f"session id {session.caller_id!r} appears twice")
            except _Invalid as exc:
                self.sessions[db_id] = None
                self.invalid("sessions", db_id, str(exc))
                continue
            self.sessions[db_id] = session
            self.caller_ids[db_id] = session.caller_id
            self.callers.add(session.caller_id)

    async def read_contexts(self) -> None:
        if not self.source.has("agent_contexts"):
            return
        tie = self.source.tie
        by_legacy_id: dict[Any, _Context] = {}
        for row in await self.source.fetch(self.source.select("agent_contexts", tie)):
            legacy_id, session_db_id = row[0], row[1]
            if session_db_id in self.contexts:
                self.invalid("agent_contexts", legacy_id, "a second context of its session")
                continue
            try:
                context: _Context | None = _context(row)
            except _Invalid as exc:
                self.invalid("agent_contexts", legacy_id, f"{exc} (skipped with its switches)")
                context = None
            self.contexts[session_db_id] = context
            if context is not None:
                by_legacy_id[legacy_id] = context
        if not self.source.has("agent_switches"):
            return
        query = self.source.select("agent_switches", f'"context_db_id", "switched_at", {tie}')
        orphans: dict[Any, int] = {}
        for row in await self.source.fetch(query):
            context_id = row[0]
            context = by_legacy_id.get(context_id)
            if context is None:
                orphans[context_id] = orphans.get(context_id, 0) + 1
                continue
            try:
                context.switches.append(_switch(row))
            except _Invalid as exc:
                self.invalid("agent_switches", row[1], str(exc))
        for context_id, count in orphans.items():
            self.invalid(
                "agent_switches",
                f"of context_db_id {context_id!r}",
                "no such (valid) agent context",
                count,
            )

    async def import_group(self, db_id: Any, rows: list[Sequence[Any]]) -> None:
        """One legacy session and its messages (sorted), context and switches."""
        if db_id not in self.sessions:
            self.invalid("messages", f"of session_db_id {db_id!r}", "no such session", len(rows))
            return
        session = self.sessions.pop(db_id)
        context = self.contexts.pop(db_id, None)
        self.advance()
        if session is None:  # invalid: reported with its row; its dependants go with it
            dependants = len(rows) + (1 + len(context.switches) if context else 0)
            if dependants:
                self.invalid(
                    "messages/agent_contexts",
                    f"of session_db_id {db_id!r}",
                    "skipped with their invalid session",
                    dependants,
                )
            return
        if session.caller_id in self.present:
            self.report.sessions_present.append(session.caller_id)
            return

        messages = []
        for row in rows:
            try:
                messages.append(_message(row))
            except _Invalid as exc:
                self.invalid("messages", row[1], f"{exc} (session {session.caller_id!r})")
        switches = context.switches if context is not None else []
        if self.dry_run:
            self.count(messages, context, switches)
            return
        try:
            imported = await self.write(session, messages, context, switches)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise
            self.report.failed.append((session.caller_id, _first_line(exc)))
            return
        if imported:
            self.count(messages, context, switches)
            message_cache.discard(session.caller_id)
        else:  # inserted meanwhile by someone else
            self.report.sessions_present.append(session.caller_id)

    def count(self, messages: list[Any], context: _Context | None, switches: list[Any]) -> None:
        self.report.sessions_imported += 1
        self.report.messages += len(messages)
        if context is not None:
            self.report.contexts += 1
            self.report.switches += len(switches)

    async def write(
        self,
        session: _Session,
        messages: list[tuple[Any, ...]],
        context: _Context | None,
        switches: list[tuple[Any, ...]],
    ) -> bool:
        sid = session.caller_id
        async with atomic(self.db) as conn:
            # RETURNING, not a row count: Tortoise's asyncpg client reports the OID
            # of "INSERT 0 1" as the count.
            inserted = await conn.execute_query_dict(
                sql(conn, _INSERT_SESSION), [sid, *session.values, _new_token()]
            )
            if not inserted:
                return False
            if messages:
                await conn.execute_many(
                    sql(conn, _INSERT_MESSAGE),
                    [[sid, position, *m] for position, m in enumerate(messages)],
                )
            if context is not None:
                agent, created, updated, switch_count, metadata = context.values
                last_switch = max((s[2] for s in switches), default=None)
                rows = await conn.execute_query_dict(
                    sql(conn, _INSERT_CONTEXT),
                    [sid, agent, created, updated, last_switch, switch_count, metadata],
                )
                context_id = rows[0]["id"]
                if switches:
                    await conn.execute_many(
                        sql(conn, _INSERT_SWITCH),
                        [[context_id, position, *s] for position, s in enumerate(switches)],
                    )
        return True

    async def import_approvals(self) -> None:
        if not self.source.has("pending_approvals"):
            return
        tie = self.source.tie
        groups: dict[Any, list[Sequence[Any]]] = {}  # by call_id, oldest first
        for row in await self.source.fetch(
            self.source.select("pending_approvals", f'"created_at", {tie}')
        ):
            groups.setdefault(row[1], []).append(row)
        keys = [k for k in groups if isinstance(k, str)]
        present = await _existing(self.db, "pending_approvals", "call_id", keys)
        merged: list[tuple[_Approval, MergedApproval | None]] = []
        for call_id, rows in groups.items():
            if call_id in present:
                self.report.approvals_present += 1
                continue
            valid = []
            for row in rows:
                try:
                    valid.append(_approval(row, self.caller_ids, self.source.variant))
                except _Invalid as exc:
                    self.invalid("pending_approvals", row[0], str(exc))
            if valid:
                merged.append(_merge(valid))
        for start in range(0, len(merged), _BATCH):
            batch = merged[start : start + _BATCH]
            if not self.dry_run:
                try:
                    batch = await self.write_approvals(batch)
                except Exception as exc:
                    if is_database_unavailable(exc):
                        raise
                    what = f"approvals {batch[0][0].call_id!r} .. {batch[-1][0].call_id!r}"
                    self.report.failed.append((what, _first_line(exc)))
                    continue
            self.report.approvals += len(batch)
            self.report.merged.extend(m for _, m in batch if m is not None)

    async def write_approvals(
        self, batch: list[tuple[_Approval, MergedApproval | None]]
    ) -> list[tuple[_Approval, MergedApproval | None]]:
        """Insert a batch in one transaction; return the part that was inserted."""
        async with atomic(self.db) as conn:
            # Inserted meanwhile by someone else: skipped, and counted as such.
            taken = await _existing(
                conn, "pending_approvals", "call_id", [a.call_id for a, _ in batch]
            )
            batch = [(a, m) for a, m in batch if a.call_id not in taken]
            self.report.approvals_present += len(taken)
            if batch:
                await conn.execute_many(
                    sql(conn, _INSERT_APPROVAL),
                    [
                        [
                            a.call_id,
                            a.session_id,
                            a.tool_name,
                            a.arguments,
                            a.reason,
                            a.created_at,
                            a.status,
                        ]
                        for a, _ in batch
                    ],
                )
        return batch


async def import_legacy(
    db: DB,
    source: LegacySource,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Copy everything from the legacy `source` into `db` (see the module docstring).

    `progress(n)` is called as sessions are handled (n at a time, n = 1 today);
    `source.count_sessions()` is the total. Raises `SchemaOutOfDateError` if `db` is
    not fully migrated, `LegacyImportError` if the legacy database fails while being
    read (sessions imported so far stay imported: run again to finish).
    """
    await check_target_schema(db)
    importer = _Importer(db, source, dry_run, progress)
    return await importer.run()
