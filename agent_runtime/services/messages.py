"""Messages: validation of the legacy message dicts, and reads in saved order."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.sessions import MessageIn
from agent_runtime.schemas.validation import lookup_id, require_positive_int, validate
from agent_runtime.services._common import DB
from agent_runtime.services._sql import db_datetime, json_loads, json_or_none, sql
from agent_runtime.timeutils import parse_datetime
from models import Message, Session
from models.limits import INT_MAX
from models.queries import messages as messages_sql

__all__ = [
    "MessagePage",
    "NewMessage",
    "decode_json",
    "delete_messages_from",
    "get_messages_paginated",
    "insert_messages",
    "list_messages",
    "message_dict",
    "new_message",
    "next_position",
    "project",
    "same_as_stored",
    "stored_messages",
]

# The loaded shape's fields, and what a message is as far as storage goes (other
# keys of a caller's dict are ignored): the columns of the hand-written SQL.
MESSAGE_FIELDS = messages_sql.LOADED_COLUMNS
STORED_KEYS = messages_sql.STORED_COLUMNS


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
    session_id: str,
    position: int,
    raw: Any,
    now: datetime,
    *,
    index: int | None = None,
    schema: type[MessageIn] = MessageIn,
) -> NewMessage:
    """Validate one caller message (legacy dict shape) into an INSERT row.

    `index` is where the caller has it, when that is not its `position`.
    """
    if isinstance(raw, Mapping) and not isinstance(raw, dict):
        raw = dict(raw)
    message = validate(schema, raw, "messages", position if index is None else index)
    values = (
        session_id,
        position,
        message.role.value,
        message.content,
        now if message.timestamp is None else message.timestamp,
        message.name,
        message.tool_call_id,
        json_or_none(message.tool_calls),
        message.token_count,
        json_or_none(message.metadata),
    )
    return NewMessage(values, project(raw))


async def insert_messages(db: DB, rows: Sequence[NewMessage]) -> None:
    if rows:
        await db.execute_many(sql(db, messages_sql.INSERT), [list(r.values) for r in rows])


async def next_position(db: DB, session_id: str) -> int:
    _, rows = await db.execute_query(sql(db, messages_sql.NEXT_POSITION), [session_id])
    return int(rows[0][0])


async def delete_messages_from(db: DB, session_id: str, position: int) -> None:
    await db.execute_query(sql(db, messages_sql.DELETE_FROM), [session_id, position])


def decode_json(value: Any) -> Any:
    """A stored JSON value as Python (SQLite gives text; PostgreSQL may decode itself)."""
    return json_loads(value) if isinstance(value, str | bytes) else value


def loaded_message(
    role: Any,
    content: str | None,
    name: str | None,
    tool_call_id: str | None,
    tool_calls: Any,
    decode: Callable[[Any], Any] = decode_json,
) -> dict[str, Any]:
    """The legacy message shape: role and content, other keys only when set.

    `decode` turns the stored tool_calls JSON into the value to return."""
    out: dict[str, Any] = {"role": str(role), "content": content}
    if name is not None:
        out["name"] = name
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    if tool_calls is not None:
        out["tool_calls"] = decode(tool_calls)
    return out


def message_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return loaded_message(*(row[key] for key in MESSAGE_FIELDS))


async def stored_messages(db: DB, session_id: str) -> list[dict[str, Any]]:
    """Every stored field of the session's messages, in saved order."""
    rows = await db.execute_query_dict(sql(db, messages_sql.SELECT_STORED), [session_id])
    for row in rows:
        row["tool_calls"] = decode_json(row["tool_calls"])
        row["metadata"] = decode_json(row["metadata"])
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
        Message.filter(Session.visible_through("session"), session_id=session_id)
        .using_db(db)
        .order_by("position")
        .offset((page - 1) * page_size)
        .limit(page_size)
        .values(*MESSAGE_FIELDS)
    )
    return [message_dict(r) for r in rows]


# A page item's fields beyond the legacy shape, each only when set.
PAGE_EXTRA_FIELDS = ("token_count", "metadata")


def page_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A message of a page: its position, the legacy shape, then `token_count` and
    `metadata` when set."""
    item = {"position": row["position"], **message_dict(row)}
    if row["token_count"] is not None:
        item["token_count"] = row["token_count"]
    if row["metadata"] is not None:
        item["metadata"] = decode_json(row["metadata"])
    return item


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
    for position, name in ((after, "after"), (before, "before")):
        if position is not None:
            require_positive_int(position, name, allow_zero=True, maximum=INT_MAX)
    if not await Session.visible.filter(id=session_id).using_db(db).exists():
        return None
    query = Message.filter(session_id=session_id).using_db(db)
    if before is not None:
        query = query.filter(position__lt=before)
    if after is not None:
        query = query.filter(position__gt=after)
    rows = await (
        query.order_by("-position" if backward else "position")
        .limit(limit + 1)
        .values("position", *MESSAGE_FIELDS, *PAGE_EXTRA_FIELDS)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    items = [page_item(r) for r in rows]
    if backward:
        return MessagePage(items, more_before=more, more_after=before is not None)
    return MessagePage(items, more_before=after is not None, more_after=more)
