"""`save_session`: the legacy "here is the whole conversation" save, done incrementally.

The caller passes every message each time, as the legacy API requires; storage
only changes what differs. When the stored messages are a prefix of the new
list only the tail is inserted; otherwise messages are replaced from the first
difference. The result is what a delete-everything-and-reinsert save would
store (messages keep their original timestamps), at a cost that follows the new
messages rather than the length of the conversation: the stored list is known
from this process's cache (see `message_cache`) and compared in C, and only the
tail is validated and written.

On SQLite a save runs in the lazy write transaction (`write_atomic`; see
`agent_runtime.db.sqlite_engine.LazySqliteTransaction`): fewer trips to its thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_runtime.errors import InvalidInputError, PreconditionFailedError
from agent_runtime.observability.metrics import MESSAGE_CACHE_STALE, MESSAGES_PER_SAVE
from agent_runtime.schemas.sessions import MessageIn
from agent_runtime.schemas.types import cut_title
from agent_runtime.schemas.validation import require_id
from agent_runtime.services._common import DB, check_version, write_atomic
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
    "append_messages",
    "save_session",
    "write_messages",
]

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
    async with write_atomic(db) as conn:
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
    async with write_atomic(db) as conn:
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
