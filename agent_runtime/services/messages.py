"""Messages: validation of the legacy message dicts, and reads in saved order."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_runtime.errors import InvalidInputError
from agent_runtime.services._common import (
    DB,
    check_json,
    lookup_id,
    optional_mapping,
    require_positive_int,
    require_str,
)
from agent_runtime.services._sql import db_datetime, json_loads, json_or_none, sql
from agent_runtime.timeutils import parse_datetime
from models import Message, MessageRole, Session

__all__ = [
    "MessagePage",
    "NewMessage",
    "delete_messages_from",
    "get_messages_paginated",
    "insert_messages",
    "list_messages",
    "message_dict",
    "new_message",
    "next_position",
    "project",
    "same_as_stored",
    "session_messages",
    "stored_messages",
]

_ROLES = {r.value for r in MessageRole}
MESSAGE_FIELDS = ("role", "content", "name", "tool_call_id", "tool_calls")
# What a message is, as far as storage goes; other keys of a caller's dict are ignored.
STORED_KEYS = (
    "role",
    "content",
    "name",
    "tool_call_id",
    "tool_calls",
    "token_count",
    "metadata",
    "timestamp",
)
INT_MAX = 2**31 - 1

_INSERT = (
    'INSERT INTO messages (session_id, "position", role, content, "timestamp", name, '
    "tool_call_id, tool_calls, token_count, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_LOADED = (
    "SELECT role, content, name, tool_call_id, tool_calls FROM messages "
    'WHERE session_id = ? ORDER BY "position"'
)
_SELECT_STORED = (
    'SELECT role, content, name, tool_call_id, tool_calls, token_count, metadata, "timestamp" '
    'FROM messages WHERE session_id = ? ORDER BY "position"'
)
_NEXT_POSITION = 'SELECT COALESCE(MAX("position") + 1, 0) FROM messages WHERE session_id = ?'
_DELETE_FROM = 'DELETE FROM messages WHERE session_id = ? AND "position" >= ?'


def project(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Our own copy of the stored keys of a caller's message (nested JSON copied)."""
    out = {key: raw[key] for key in STORED_KEYS if key in raw}
    for key in ("tool_calls", "metadata"):
        if out.get(key) is not None:
            out[key] = copy.deepcopy(out[key])
    return out


@dataclass(frozen=True, slots=True)
class NewMessage:
    values: tuple[Any, ...]  # the INSERT parameters
    projection: dict[str, Any]


def new_message(
    session_id: str, position: int, raw: Any, now: datetime, *, index: int | None = None
) -> NewMessage:
    """Validate one caller message (legacy dict shape) into an INSERT row.

    `index` is where the caller has it, when that is not its `position`.
    """
    where = f"messages[{position if index is None else index}]"
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where} must be an object, got {type(raw).__name__}")
    role = raw.get("role")
    if role not in _ROLES:
        raise InvalidInputError(f"{where}.role must be one of {sorted(_ROLES)}, got {role!r}")
    tool_calls = raw.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise InvalidInputError(f"{where}.tool_calls must be a list")
    check_json(tool_calls, f"{where}.tool_calls")
    token_count = raw.get("token_count")
    if token_count is not None:
        require_positive_int(token_count, f"{where}.token_count", allow_zero=True)
        if token_count > INT_MAX:
            raise InvalidInputError(f"{where}.token_count is larger than {INT_MAX}")
    stamp = raw.get("timestamp")
    values = (
        session_id,
        position,
        str(role),
        require_str(raw.get("content"), f"{where}.content", optional=True),
        now if stamp is None else parse_datetime(stamp, f"{where}.timestamp"),
        require_str(raw.get("name"), f"{where}.name", max_length=255, optional=True),
        require_str(
            raw.get("tool_call_id"), f"{where}.tool_call_id", max_length=255, optional=True
        ),
        json_or_none(tool_calls),
        token_count,
        json_or_none(optional_mapping(raw.get("metadata"), f"{where}.metadata")),
    )
    return NewMessage(values, project(raw))


async def insert_messages(db: DB, rows: Sequence[NewMessage]) -> None:
    if rows:
        await db.execute_many(sql(db, _INSERT), [list(r.values) for r in rows])


async def next_position(db: DB, session_id: str) -> int:
    _, rows = await db.execute_query(sql(db, _NEXT_POSITION), [session_id])
    return int(rows[0][0])


async def delete_messages_from(db: DB, session_id: str, position: int) -> None:
    await db.execute_query(sql(db, _DELETE_FROM), [session_id, position])


def _json(value: Any) -> Any:
    return json_loads(value) if isinstance(value, str | bytes) else value


def loaded_message(
    role: Any, content: str | None, name: str | None, tool_call_id: str | None, tool_calls: Any
) -> dict[str, Any]:
    """The legacy message shape: role and content, other keys only when set."""
    out: dict[str, Any] = {"role": str(role), "content": content}
    if name is not None:
        out["name"] = name
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    if tool_calls is not None:
        out["tool_calls"] = _json(tool_calls)
    return out


def message_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return loaded_message(*(row[key] for key in MESSAGE_FIELDS))


async def session_messages(db: DB, session_id: str) -> list[dict[str, Any]]:
    """The session's messages in the legacy load shape, in saved order."""
    # Rows as the driver returns them (indexable), without an intermediate dict each.
    _, rows = await db.execute_query(sql(db, _SELECT_LOADED), [session_id])
    return [loaded_message(*row) for row in rows]


async def stored_messages(db: DB, session_id: str) -> list[dict[str, Any]]:
    """Every stored field of the session's messages, in saved order."""
    rows = await db.execute_query_dict(sql(db, _SELECT_STORED), [session_id])
    for row in rows:
        row["tool_calls"] = _json(row["tool_calls"])
        row["metadata"] = _json(row["metadata"])
        row["timestamp"] = db_datetime(row["timestamp"])
    return rows


def same_as_stored(raw: Any, row: Mapping[str, Any]) -> bool:
    """Would saving `raw` store exactly `row` (the timestamp aside, unless `raw` has one)?"""
    if not isinstance(raw, Mapping):
        return False
    for key in ("role", "content", "name", "tool_call_id", "tool_calls", "token_count", "metadata"):
        if raw.get(key) != row[key]:
            return False
    stamp = raw.get("timestamp")
    if stamp is None:
        return True
    try:
        return parse_datetime(stamp, "timestamp") == row["timestamp"]
    except InvalidInputError:
        return False


async def get_messages_paginated(
    db: DB, session_id: str, page: int = 1, page_size: int = 50
) -> list[dict[str, Any]]:
    """Messages in saved order, 1-indexed pages; [] for an unknown or deleted session."""
    require_positive_int(page, "page")
    require_positive_int(page_size, "page_size")
    session_id = lookup_id(session_id)
    rows = await (
        Message.filter(session_id=session_id, session__deleted_at__isnull=True)
        .using_db(db)
        .order_by("position")
        .offset((page - 1) * page_size)
        .limit(page_size)
        .values(*MESSAGE_FIELDS)
    )
    return [message_dict(r) for r in rows]


@dataclass(frozen=True)
class MessagePage:
    """Messages with their positions, ascending; whether more exist on either side."""

    items: list[dict[str, Any]]
    more_before: bool
    more_after: bool


async def list_messages(
    db: DB,
    session_id: str,
    *,
    limit: int,
    after: int | None = None,
    before: int | None = None,
    latest: bool = False,
) -> MessagePage | None:
    """A keyset page of messages by position, ascending; None if the session is
    unknown or deleted.

    Forward: the `limit` messages after position `after` (from the start if None).
    Backward (`before` given, or `latest`): the `limit` messages just before
    position `before` (the last ones if None), still in saved order.
    """
    require_positive_int(limit, "limit")
    session_id = lookup_id(session_id)
    backward = latest or before is not None
    if backward and after is not None:
        raise InvalidInputError("page forward (after) or backward (before / latest), not both")
    if not await Session.exists(id=session_id, deleted_at__isnull=True, using_db=db):
        return None
    query = Message.filter(session_id=session_id).using_db(db)
    if before is not None:
        query = query.filter(position__lt=before)
    if after is not None:
        query = query.filter(position__gt=after)
    rows = await (
        query.order_by("-position" if backward else "position")
        .limit(limit + 1)
        .values("position", *MESSAGE_FIELDS)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    items = [{"position": r["position"], **message_dict(r)} for r in rows]
    if backward:
        return MessagePage(items, more_before=more, more_after=before is not None)
    return MessagePage(items, more_before=after is not None, more_after=more)
