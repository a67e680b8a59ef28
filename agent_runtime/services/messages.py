"""Messages: validation of the legacy message dicts, and reads in saved order."""

from __future__ import annotations

from collections.abc import Mapping
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
from agent_runtime.timeutils import parse_datetime
from models import Message, MessageRole, Session

__all__ = [
    "MessagePage",
    "get_messages_paginated",
    "list_messages",
    "message_dict",
    "new_message",
    "session_messages",
]

_ROLES = {r.value for r in MessageRole}
MESSAGE_FIELDS = ("role", "content", "name", "tool_call_id", "tool_calls")


def new_message(session_id: str, position: int, raw: Any, now: datetime) -> Message:
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
    check_json(tool_calls, f"{where}.tool_calls")
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


def message_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy message shape: role and content, other keys only when set."""
    out: dict[str, Any] = {"role": str(row["role"]), "content": row["content"]}
    for key in ("name", "tool_call_id", "tool_calls"):
        if row[key] is not None:
            out[key] = row[key]
    return out


async def session_messages(db: DB, session_id: str) -> list[dict[str, Any]]:
    rows = await (
        Message.filter(session_id=session_id)
        .using_db(db)
        .order_by("position")
        .values(*MESSAGE_FIELDS)
    )
    return [message_dict(r) for r in rows]


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
