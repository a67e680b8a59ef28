"""The HTTP floor: a bare Starlette app over the raw drivers (aiosqlite / asyncpg) on this
project's migrated schema, serving the two routes the `rest` workload measures with the
project's semantics and doing the least a correct server must:

* `POST /sessions/{id}` with the whole message list: decode (orjson if importable),
  check each message minimally (role one of the four, content a string or null),
  compare with this process's copy of the stored list (prefix equal: insert only the
  tail; else delete from the first difference and insert the rest), bump the session's
  version and last_activity, commit; 200 `{"status":"saved"}` with `ETag: "<version>"`.
  The copy is trusted only while the session's version is the one it was saved at.
* `GET /sessions/{id}`: the session and its messages in saved order, the body built by
  bytes concatenation with the stored `tool_calls` JSON spliced in undecoded; `ETag`;
  404 for an unknown (or soft-deleted) session.
* `GET /health/ready` for the workload's readiness probe.

SQLite: one connection with the project's pragmas, `BEGIN IMMEDIATE`, an asyncio lock
serializing its use (as `benchmarks/floor.py`). PostgreSQL: an asyncpg pool of the
project's default size (10) and `SELECT ... FOR UPDATE` on the session row.

Served by `uvicorn benchmarks.http_floor:app` with BENCH_FLOOR_DB_URL set to a
`sqlite:///path` or `postgresql://...` URL of an already migrated database.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import aiosqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.floor import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from benchmarks.floor import PRAGMAS as _PRAGMAS
from benchmarks.floor import AsyncpgPool

__all__ = ["ENV_URL", "FLOOR_JSON", "app"]

ENV_URL = "BENCH_FLOOR_DB_URL"

_loads: Callable[[bytes], Any]
_dumps: Callable[[Any], bytes]
try:
    import orjson

    _loads, _dumps = orjson.loads, orjson.dumps
    FLOOR_JSON = "orjson"
except ImportError:  # the lead may add orjson to the project; until then, json
    _loads = json.loads
    FLOOR_JSON = "json"

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


_ROLES = frozenset(("user", "assistant", "system", "tool"))
_SQL = {
    "lock": "SELECT version FROM sessions WHERE id = {0} FOR UPDATE",
    "create": "INSERT INTO sessions (id, title, created_at, last_activity, is_active, version) "
    "VALUES ({0}, NULL, {1}, {1}, TRUE, 0) ON CONFLICT (id) DO NOTHING",
    "create_returning": "INSERT INTO sessions "
    "(id, title, created_at, last_activity, is_active, version) "
    "VALUES ({0}, {1}, {2}, {2}, TRUE, 1) RETURNING version",
    "touch": "UPDATE sessions SET last_activity = {0}, deleted_at = NULL, is_active = TRUE, "
    "version = version + 1, title = COALESCE(title, {1}) WHERE id = {2} RETURNING version",
    "delete_from": "DELETE FROM messages WHERE session_id = {0} AND position >= {1}",
    "insert_message": f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "
    "VALUES ({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9})",
    "stored": "SELECT role, content, name, tool_call_id, tool_calls, token_count, metadata "
    "FROM messages WHERE session_id = {0} ORDER BY position",
    "session": "SELECT created_at, last_activity, version FROM sessions "
    "WHERE id = {0} AND deleted_at IS NULL",
    "messages": "SELECT role, content, name, tool_call_id, tool_calls FROM messages "
    "WHERE session_id = {0} ORDER BY position",
}
# Numbered placeholders, so that one parameter can appear twice.
_SQLITE = {k: v.format(*[f"?{i}" for i in range(1, 11)]) for k, v in _SQL.items()}
_POSTGRES = {k: v.format(*[f"${i}" for i in range(1, 11)]) for k, v in _SQL.items()}

Messages = list[dict[str, Any]]


class BadRequest(ValueError):
    pass


def _check(messages: Any) -> Messages:
    if not isinstance(messages, list):
        raise BadRequest("the body must be a JSON array of messages")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise BadRequest("each message needs a role: user, assistant, system or tool")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise BadRequest("content must be a string or null")
    return messages


def _keep(stored: Messages, messages: Messages) -> int:
    """How many leading messages are already stored: one comparison in C when the
    stored list is a prefix of the new one (the usual case)."""
    n = len(stored)
    if n <= len(messages) and stored == messages[:n]:
        return n
    n = min(n, len(messages))
    return next((i for i in range(n) if stored[i] != messages[i]), n)


def _title(messages: Messages) -> str | None:
    for m in messages:
        if m["role"] == "user" and m.get("content"):
            return str(m["content"])[:500]
    return None


def _json_text(value: Any) -> str | None:
    return None if value is None else _dumps(value).decode()


def _rows(session_id: str, messages: Messages, start: int, now: Any) -> list[tuple[Any, ...]]:
    return [
        (
            session_id,
            position,
            m["role"],
            m.get("content"),
            now,
            m.get("name"),
            m.get("tool_call_id"),
            _json_text(m.get("tool_calls")),
            m.get("token_count"),
            _json_text(m.get("metadata")),
        )
        for position, m in enumerate(messages[start:], start)
    ]


def _stored_dict(row: Any) -> dict[str, Any]:
    """A stored message in the shape callers send it (for a cache miss only)."""
    role, content, name, tool_call_id, tool_calls, token_count, metadata = row
    out: dict[str, Any] = {"role": role, "content": content}
    for key, value in (("name", name), ("tool_call_id", tool_call_id)):
        if value is not None:
            out[key] = value
    if tool_calls is not None:
        out["tool_calls"] = _loads(tool_calls)
    if token_count is not None:
        out["token_count"] = token_count
    if metadata is not None:
        out["metadata"] = _loads(metadata)
    return out


def _body(session_id: str, created_at: str, last_activity: str, rows: Any) -> bytes:
    """The GET body by concatenation; `tool_calls` is the stored JSON text as is."""
    items = []
    for role, content, name, tool_call_id, tool_calls in rows:
        item = b'{"role":"' + role.encode() + b'","content":' + _dumps(content)
        if name is not None:
            item += b',"name":' + _dumps(name)
        if tool_call_id is not None:
            item += b',"tool_call_id":' + _dumps(tool_call_id)
        if tool_calls is not None:
            item += b',"tool_calls":' + tool_calls.encode()
        items.append(item + b"}")
    return (
        b'{"session_id":'
        + _dumps(session_id)
        + b',"messages":['
        + b",".join(items)
        + b'],"last_activity":"'
        + last_activity.encode()
        + b'","created_at":"'
        + created_at.encode()
        + b'"}'
    )


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def save(self, session_id: str, messages: Messages) -> int:
        """Store `messages` as the session's whole list; the new version."""

    async def get(self, session_id: str) -> tuple[bytes, int] | None:
        """(JSON body, version), or None for an unknown session."""


class SqliteStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._cache: dict[str, tuple[int, Messages]] = {}  # id -> (version, stored list)

    @property
    def conn(self) -> aiosqlite.Connection:
        assert self._conn is not None, "call open() first"
        return self._conn

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self._path, isolation_level=None)
        for pragma in _PRAGMAS:
            await self._conn.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def save(self, session_id: str, messages: Messages) -> int:
        now = datetime.now(UTC).isoformat(sep=" ")  # the text Tortoise stores on SQLite
        title = _title(messages)
        conn = self.conn
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                found = await conn.execute_fetchall(_SQLITE["touch"], (now, title, session_id))
                if found:
                    version = int(next(iter(found))[0])
                    cached = self._cache.get(session_id)
                    if cached is not None and cached[0] == version - 1:
                        stored = cached[1]
                    else:
                        old = await conn.execute_fetchall(_SQLITE["stored"], (session_id,))
                        stored = [_stored_dict(r) for r in old]
                else:
                    created = await conn.execute_fetchall(
                        _SQLITE["create_returning"], (session_id, title, now)
                    )
                    version, stored = int(next(iter(created))[0]), []
                keep = _keep(stored, messages)
                if keep < len(stored):
                    await conn.execute(_SQLITE["delete_from"], (session_id, keep))
                if keep < len(messages):
                    new_rows = _rows(session_id, messages, keep, now)
                    await conn.executemany(_SQLITE["insert_message"], new_rows)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            self._cache[session_id] = (version, messages)
        return version

    async def get(self, session_id: str) -> tuple[bytes, int] | None:
        async with self._lock:  # one connection: nothing writes between the two reads
            found = list(await self.conn.execute_fetchall(_SQLITE["session"], (session_id,)))
            if not found:
                return None
            rows = await self.conn.execute_fetchall(_SQLITE["messages"], (session_id,))
        created_at, last_activity, version = found[0]
        # Stored as "YYYY-MM-DD HH:MM:SS.ffffff+00:00"; answered in ISO 8601 with a T.
        created, last = created_at.replace(" ", "T", 1), last_activity.replace(" ", "T", 1)
        return _body(session_id, created, last, rows), int(version)


class PostgresStore(AsyncpgPool):
    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        super().__init__(dsn, pool_size)
        self._cache: dict[str, tuple[int, Messages]] = {}

    async def save(self, session_id: str, messages: Messages) -> int:
        now = datetime.now(UTC)
        title = _title(messages)
        async with self.pool.acquire() as conn, conn.transaction():
            version = await conn.fetchval(_POSTGRES["lock"], session_id)
            if version is None:
                await conn.execute(_POSTGRES["create"], session_id, now)
                version = await conn.fetchval(_POSTGRES["lock"], session_id)
            cached = self._cache.get(session_id)
            if cached is not None and cached[0] == version:
                stored = cached[1]
            else:
                rows = await conn.fetch(_POSTGRES["stored"], session_id)
                stored = [_stored_dict(r) for r in rows]
            keep = _keep(stored, messages)
            if keep < len(stored):
                await conn.execute(_POSTGRES["delete_from"], session_id, keep)
            if keep < len(messages):
                rows = _rows(session_id, messages, keep, now)
                await conn.executemany(_POSTGRES["insert_message"], rows)
            version = await conn.fetchval(_POSTGRES["touch"], now, title, session_id)
        # After the commit; a concurrent save of the same session may overwrite this
        # entry with an older one, which the version check above then ignores.
        self._cache[session_id] = (version, messages)
        return int(version)

    async def get(self, session_id: str) -> tuple[bytes, int] | None:
        async with self.pool.acquire() as conn:
            found = await conn.fetchrow(_POSTGRES["session"], session_id)
            if found is None:
                return None
            rows = await conn.fetch(_POSTGRES["messages"], session_id)
        created_at, last_activity, version = found
        return _body(session_id, created_at.isoformat(), last_activity.isoformat(), rows), version


def _store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    return PostgresStore(url.replace("postgresql+asyncpg://", "postgresql://"))


_store_instance: Store | None = None


def _current() -> Store:
    assert _store_instance is not None, "the app's lifespan did not run"
    return _store_instance


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


async def save_session(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    try:
        messages = _check(_loads(await request.body()))
    except ValueError as exc:  # JSON errors of json and orjson are ValueErrors too
        return Response(_dumps({"detail": str(exc)}), 400, media_type="application/json")
    version = await _current().save(session_id, messages)
    return Response(b'{"status":"saved"}', headers=_etag(version), media_type="application/json")


async def get_session(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    found = await _current().get(session_id)
    if found is None:
        detail = _dumps({"detail": f"session {session_id!r} not found"})
        return Response(detail, 404, media_type="application/json")
    body, version = found
    return Response(body, headers=_etag(version), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    global _store_instance
    store = _store(os.environ[ENV_URL])
    await store.open()
    _store_instance = store
    try:
        yield
    finally:
        _store_instance = None
        await store.close()


app = Starlette(
    routes=[
        Route("/sessions/{session_id}", get_session, methods=["GET"]),
        Route("/sessions/{session_id}", save_session, methods=["POST"]),
        Route("/health/ready", ready, methods=["GET"]),
    ],
    lifespan=_lifespan,
)
