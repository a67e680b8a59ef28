"""Sessions and their messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.functions import Count, Sum

from agent_runtime.errors import InvalidInputError
from agent_runtime.services._common import (
    DB,
    atomic,
    optional_mapping,
    require_id,
    require_non_negative_number,
    require_positive_int,
    require_str,
)
from agent_runtime.timeutils import as_utc, parse_datetime, utc_now
from models import Message, MessageRole, PendingApproval, Session

__all__ = [
    "cleanup_old_sessions",
    "delete_session",
    "get_messages_paginated",
    "get_session_stats",
    "hard_delete_old_sessions",
    "list_all_sessions",
    "load_session",
    "save_session",
    "update_session_description",
    "update_session_title",
]

TITLE_MAX = 500
_ID_BATCH = 500  # well under SQLite's and PostgreSQL's bound-parameter limits
_ROLES = {r.value for r in MessageRole}
_MESSAGE_FIELDS = ("role", "content", "name", "tool_call_id", "tool_calls")


def _new_message(session_id: str, position: int, raw: Any, now: datetime) -> Message:
    """Validate one caller message (legacy dict shape) into an unsaved `Message`."""
    where = f"messages[{position}]"
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where} must be an object, got {type(raw).__name__}")
    role = raw.get("role")
    if role not in _ROLES:
        raise InvalidInputError(f"{where}.role must be one of {sorted(_ROLES)}, got {role!r}")
    tool_calls = raw.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise InvalidInputError(f"{where}.tool_calls must be a list")
    token_count = raw.get("token_count")
    if token_count is not None:
        require_positive_int(token_count, f"{where}.token_count", allow_zero=True)
    stamp = raw.get("timestamp")
    return Message(
        session_id=session_id,
        position=position,
        role=MessageRole(role),
        content=require_str(raw.get("content"), f"{where}.content", optional=True),
        timestamp=now if stamp is None else parse_datetime(stamp, f"{where}.timestamp"),
        name=require_str(raw.get("name"), f"{where}.name", max_length=255, optional=True),
        tool_call_id=require_str(
            raw.get("tool_call_id"), f"{where}.tool_call_id", max_length=255, optional=True
        ),
        tool_calls=tool_calls,
        token_count=token_count,
        metadata=optional_mapping(raw.get("metadata"), f"{where}.metadata"),
    )


def _message_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy message shape: role and content, other keys only when set."""
    out: dict[str, Any] = {"role": str(row["role"]), "content": row["content"]}
    for key in ("name", "tool_call_id", "tool_calls"):
        if row[key] is not None:
            out[key] = row[key]
    return out


def _first_user_title(messages: Sequence[Message]) -> str | None:
    for message in messages:
        if message.role == MessageRole.USER and message.content:
            return message.content[:TITLE_MAX]
    return None


async def save_session(
    db: DB, session_id: str, messages: list[dict[str, Any]], last_activity: datetime
) -> None:
    """Create or update a session and replace its messages, all or nothing.

    Saving a soft-deleted session brings it back: the caller is using it.
    """
    session_id = require_id(session_id)
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise InvalidInputError("messages must be a list of message objects")
    last_activity = parse_datetime(last_activity, "last_activity")
    now = utc_now()
    rows = [_new_message(session_id, i, m, now) for i, m in enumerate(messages)]
    title = _first_user_title(rows)

    async with atomic(db) as conn:
        await Session.bulk_create(
            [Session(id=session_id, created_at=now, last_activity=last_activity, title=title)],
            ignore_conflicts=True,
            using_db=conn,
        )
        # The UPDATE also takes the row lock that serializes concurrent saves of one session.
        await (
            Session.filter(id=session_id)
            .using_db(conn)
            .update(last_activity=last_activity, deleted_at=None, is_active=True)
        )
        if title is not None:
            await (
                Session.filter(id=session_id, title__isnull=True).using_db(conn).update(title=title)
            )
        await Message.filter(session_id=session_id).using_db(conn).delete()
        if rows:
            await Message.bulk_create(rows, batch_size=500, using_db=conn)


async def load_session(db: DB, session_id: str) -> dict[str, Any] | None:
    session = await (
        Session.filter(id=session_id, deleted_at__isnull=True)
        .using_db(db)
        .first()
        .values("created_at", "last_activity")
    )
    if session is None:
        return None
    rows = await (
        Message.filter(session_id=session_id)
        .using_db(db)
        .order_by("position")
        .values(*_MESSAGE_FIELDS)
    )
    return {
        "session_id": session_id,
        "messages": [_message_dict(r) for r in rows],
        "last_activity": as_utc(session["last_activity"]),
        "created_at": as_utc(session["created_at"]),
    }


async def delete_session(db: DB, session_id: str, soft: bool = True) -> bool:
    """Soft delete hides the session; hard delete removes it, its messages,
    context, switches and its tool approvals."""
    if soft:
        updated = (
            await Session.filter(id=session_id, deleted_at__isnull=True)
            .using_db(db)
            .update(deleted_at=utc_now(), is_active=False)
        )
        return updated > 0
    async with atomic(db) as conn:
        await PendingApproval.filter(session_id=session_id).using_db(conn).delete()
        deleted = await Session.filter(id=session_id).using_db(conn).delete()
    return deleted > 0


async def list_all_sessions(db: DB, include_deleted: bool = False) -> list[str]:
    """Session ids, most recently active first."""
    query = Session.all().using_db(db)
    if not include_deleted:
        query = query.filter(deleted_at__isnull=True)
    ids = await query.order_by("-last_activity", "id").values_list("id", flat=True)
    return [str(i) for i in ids]


async def get_messages_paginated(
    db: DB, session_id: str, page: int = 1, page_size: int = 50
) -> list[dict[str, Any]]:
    """Messages in saved order, 1-indexed pages; [] for an unknown or deleted session."""
    require_positive_int(page, "page")
    require_positive_int(page_size, "page_size")
    rows = await (
        Message.filter(session_id=session_id, session__deleted_at__isnull=True)
        .using_db(db)
        .order_by("position")
        .offset((page - 1) * page_size)
        .limit(page_size)
        .values(*_MESSAGE_FIELDS)
    )
    return [_message_dict(r) for r in rows]


async def get_session_stats(db: DB, session_id: str) -> dict[str, Any] | None:
    session = await (
        Session.filter(id=session_id, deleted_at__isnull=True)
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


async def update_session_title(db: DB, session_id: str, title: str) -> bool:
    """Set the title (cut to 500 characters); False if the session is unknown or deleted."""
    value = require_str(title, "title", optional=True)
    updated = (
        await Session.filter(id=session_id, deleted_at__isnull=True)
        .using_db(db)
        .update(title=None if value is None else value[:TITLE_MAX])
    )
    return updated > 0


async def update_session_description(db: DB, session_id: str, description: str) -> bool:
    updated = (
        await Session.filter(id=session_id, deleted_at__isnull=True)
        .using_db(db)
        .update(description=require_str(description, "description", optional=True))
    )
    return updated > 0


async def cleanup_old_sessions(db: DB, max_age_hours: float = 24) -> int:
    """Soft-delete sessions idle for longer than `max_age_hours`; return how many."""
    hours = require_non_negative_number(max_age_hours, "max_age_hours")
    now = utc_now()
    return (
        await Session.filter(
            deleted_at__isnull=True, last_activity__lt=now - timedelta(hours=hours)
        )
        .using_db(db)
        .update(deleted_at=now, is_active=False)
    )


async def hard_delete_old_sessions(db: DB, days_old: float = 30) -> int:
    """Remove sessions soft-deleted more than `days_old` days ago; return how many."""
    days = require_non_negative_number(days_old, "days_old")
    cutoff = utc_now() - timedelta(days=days)
    async with atomic(db) as conn:
        # Deleted by id: SQLite's change counter would also count cascaded messages.
        ids = (
            await Session.filter(deleted_at__lt=cutoff).using_db(conn).values_list("id", flat=True)
        )
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            await PendingApproval.filter(session_id__in=batch).using_db(conn).delete()
            await Session.filter(id__in=batch).using_db(conn).delete()
    return len(ids)
