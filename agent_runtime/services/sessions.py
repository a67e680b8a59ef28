"""Sessions: save, load, delete, list, describe.

Every write to a session increments its `version`; callers may pass
`if_version` (the HTTP `If-Match`) to make a write conditional: it then changes
nothing and raises `PreconditionFailedError` unless the stored version matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from tortoise.expressions import F, Q
from tortoise.functions import Count, Sum

from agent_runtime.errors import PreconditionFailedError
from agent_runtime.schemas.types import StorableText, Title
from agent_runtime.schemas.validation import lookup_id, require_positive_int, validate
from agent_runtime.services._common import DB, UNSET, Unset, atomic, check_version
from agent_runtime.services._sql import db_datetime, sql
from agent_runtime.services.checkpoints import delete_session_checkpoints
from agent_runtime.services.message_cache import message_cache
from agent_runtime.services.messages import decode_json, loaded_message
from agent_runtime.timeutils import as_utc, utc_now
from models import Message, PendingApproval, Session
from models.queries import sessions as sessions_sql

__all__ = [
    "SessionPage",
    "delete_session",
    "get_session",
    "get_session_stats",
    "get_session_version",
    "list_all_sessions",
    "list_sessions",
    "load_session",
    "load_session_json",
    "update_session",
    "update_session_description",
    "update_session_title",
]

_SUMMARY_FIELDS = (
    "id",
    "title",
    "description",
    "created_at",
    "last_activity",
    "deleted_at",
    "version",
)


async def _conditional_update(
    conn: DB, session_id: str, if_version: int | None, *, visible_only: bool, **values: Any
) -> int:
    """Update the session and bump its version; 412 if `if_version` does not match."""
    query = (Session.visible if visible_only else Session).filter(id=session_id).using_db(conn)
    if if_version is not None:
        query = query.filter(version=if_version)
    updated = await query.update(version=F("version") + 1, **values)
    if (
        not updated
        and if_version is not None
        and await Session.exists(id=session_id, using_db=conn)
    ):
        raise PreconditionFailedError(
            f"session {session_id!r} has changed: version {if_version} does not match"
        )
    return updated


async def _load(
    db: DB, session_id: str, decode: Callable[[Any], Any]
) -> tuple[dict[str, Any], int] | None:
    """The legacy `load_session` dict and the session's version, in one statement."""
    _, rows = await db.execute_query(sql(db, sessions_sql.LOAD), [session_id])
    if not rows:
        return None
    created_at, last_activity, version = rows[0][:3]
    if created_at is None:  # no message at position 0: not written by this service
        times = (
            await Session.filter(id=session_id)
            .using_db(db)
            .first()
            .values("created_at", "last_activity")
        )
        created_at, last_activity = times["created_at"], times["last_activity"]
    messages = []
    if rows[0][3] is not None:  # the role: NULL when the session has no messages
        for row in rows:
            role, content, name, tool_call_id, tool_calls = row[3:]
            messages.append(loaded_message(role, content, name, tool_call_id, tool_calls, decode))
    loaded = {
        "session_id": session_id,
        "messages": messages,
        "last_activity": db_datetime(last_activity),
        "created_at": db_datetime(created_at),
    }
    return loaded, int(version)


async def load_session(db: DB, session_id: str) -> dict[str, Any] | None:
    found = await _load(db, lookup_id(session_id), decode_json)
    return None if found is None else found[0]


def _stored_json(value: str | bytes | Any) -> Any:
    # The stored JSON text goes into the response as it is: no decode, no re-encode.
    return orjson.Fragment(value) if isinstance(value, str | bytes) else value


async def load_session_json(db: DB, session_id: str) -> tuple[bytes, int] | None:
    """`load_session` as the JSON the REST API answers, with the session's version.

    The same document FastAPI would render from `load_session` (datetimes in UTC
    with `Z`), built without decoding the stored tool calls.
    """
    found = await _load(db, lookup_id(session_id), _stored_json)
    if found is None:
        return None
    loaded, version = found
    return orjson.dumps(loaded, option=orjson.OPT_UTC_Z), version


async def get_session_version(db: DB, session_id: str) -> int | None:
    """The version of a visible session (its ETag), or None."""
    session_id = lookup_id(session_id)
    version = await (
        Session.visible.filter(id=session_id).using_db(db).first().values_list("version", flat=True)
    )
    return cast("int | None", version)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "created_at": as_utc(row["created_at"]),
        "last_activity": as_utc(row["last_activity"]),
        "deleted_at": as_utc(row["deleted_at"]) if row["deleted_at"] else None,
        "version": row["version"],
    }


async def get_session(db: DB, session_id: str) -> dict[str, Any] | None:
    """Session fields without messages, or None if unknown or deleted."""
    session_id = lookup_id(session_id)
    row = await Session.visible.filter(id=session_id).using_db(db).first().values(*_SUMMARY_FIELDS)
    return _summary(row) if row else None


async def delete_session(
    db: DB, session_id: str, soft: bool = True, *, if_version: int | None = None
) -> bool:
    """Soft delete hides the session; hard delete removes it, its messages,
    context, switches, its tool approvals and its LangGraph checkpoints. False if
    there was nothing to delete."""
    session_id = lookup_id(session_id)
    check_version(if_version)
    if soft:
        async with atomic(db) as conn:
            updated = await _conditional_update(
                conn,
                session_id,
                if_version,
                visible_only=True,
                deleted_at=utc_now(),
                is_active=False,
            )
        return updated > 0
    async with atomic(db) as conn:
        query = Session.filter(id=session_id).using_db(conn)
        if if_version is not None:
            query = query.filter(version=if_version)
        ids = await query.values_list("id", flat=True)
        if not ids:
            if if_version is not None and await Session.exists(id=session_id, using_db=conn):
                raise PreconditionFailedError(
                    f"session {session_id!r} has changed: version {if_version} does not match"
                )
            return False
        await PendingApproval.filter(session_id=session_id).using_db(conn).delete()
        # LangGraph checkpoints of the session (its thread): no foreign key either.
        await delete_session_checkpoints(conn, [session_id])
        await Session.filter(id=session_id).using_db(conn).delete()
    message_cache.discard(session_id)  # only memory: a recreated session gets a new token
    return True


async def list_all_sessions(db: DB, include_deleted: bool = False) -> list[str]:
    """Session ids, most recently active first."""
    query = (Session.all() if include_deleted else Session.visible.all()).using_db(db)
    ids = await query.order_by("-last_activity", "id").values_list("id", flat=True)
    return [str(i) for i in ids]


@dataclass(frozen=True)
class SessionPage:
    items: list[dict[str, Any]]
    next_key: tuple[datetime, str] | None  # (last_activity, id) of the last item


async def list_sessions(
    db: DB,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
    include_deleted: bool = False,
    search: str | None = None,
) -> SessionPage:
    """A keyset page of sessions, most recently active first (ties by id);
    `search`: only those whose id or title contains it (case-insensitive)."""
    require_positive_int(limit, "limit")
    query = (Session.all() if include_deleted else Session.visible.all()).using_db(db)
    if search:
        search = lookup_id(search, "search")
        query = query.filter(Q(id__icontains=search) | Q(title__icontains=search))
    if after is not None:
        last_activity, last_id = as_utc(after[0]), lookup_id(after[1], "cursor")
        query = query.filter(
            Q(last_activity__lt=last_activity) | Q(last_activity=last_activity, id__gt=last_id)
        )
    rows = await query.order_by("-last_activity", "id").limit(limit + 1).values(*_SUMMARY_FIELDS)
    items = [_summary(r) for r in rows[:limit]]
    more = len(rows) > limit
    next_key = (items[-1]["last_activity"], items[-1]["session_id"]) if more else None
    return SessionPage(items, next_key)


async def get_session_stats(db: DB, session_id: str) -> dict[str, Any] | None:
    session_id = lookup_id(session_id)
    session = await (
        Session.visible.filter(id=session_id)
        .using_db(db)
        .first()
        .values("created_at", "last_activity")
    )
    if session is None:
        return None
    totals = await (
        Message.filter(session_id=session_id)
        .using_db(db)
        .annotate(message_count=Count("id"), total_tokens=Sum("token_count"))
        .first()
        .values("message_count", "total_tokens")
    )
    last_row = await (
        Message.filter(session_id=session_id)
        .using_db(db)
        .order_by("-timestamp", "-position")
        .first()
        .values_list("timestamp", flat=True)
    )
    last = cast("datetime | None", last_row)
    return {
        "session_id": session_id,
        "message_count": int((totals or {}).get("message_count") or 0),
        "total_tokens": int((totals or {}).get("total_tokens") or 0),
        "last_message_at": as_utc(last) if last is not None else None,
        "created_at": as_utc(session["created_at"]),
        "last_activity": as_utc(session["last_activity"]),
    }


async def update_session(
    db: DB,
    session_id: str,
    *,
    title: str | Unset | None = UNSET,
    description: str | Unset | None = UNSET,
    if_version: int | None = None,
) -> bool:
    """Set title (cut to TITLE_MAX characters) and/or description of a visible session.

    False if the session is unknown or deleted.
    """
    session_id = lookup_id(session_id)
    values: dict[str, Any] = {}
    if not isinstance(title, Unset):
        values["title"] = validate(Title | None, title, "title")
    if not isinstance(description, Unset):
        values["description"] = validate(StorableText | None, description, "description")
    check_version(if_version)
    async with atomic(db) as conn:
        updated = await _conditional_update(
            conn, session_id, if_version, visible_only=True, **values
        )
    return updated > 0


async def update_session_title(db: DB, session_id: str, title: str) -> bool:
    """Set the title (cut to TITLE_MAX characters); False if the session is unknown or deleted."""
    return await update_session(db, session_id, title=title)


async def update_session_description(db: DB, session_id: str, description: str) -> bool:
    return await update_session(db, session_id, description=description)
