"""The event log: what happened to approvals, and session saves, in commit order.

`record_event` writes one entry inside the caller's transaction (so it commits,
or not, with the change it records); the readers page through the log by id.
Entries are never updated or deleted, except with their session when retention
hard-deletes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from agent_runtime.errors import NotFoundError
from agent_runtime.schemas.validation import lookup_id, require_positive_int, validate
from agent_runtime.services._common import DB
from agent_runtime.services._sql import json_or_none, sql
from agent_runtime.timeutils import as_utc, utc_now
from models import Event, EventType, PendingApproval
from models.queries import events as events_sql

__all__ = [
    "EVENT_FIELDS",
    "get_approval_events",
    "last_event_id",
    "on_event_recorded",
    "read_events",
    "record_event",
]

EVENT_FIELDS = ("id", "type", "session_id", "call_id", "actor", "data", "created_at")
_INSERT = {"postgres": events_sql.INSERT_NOTIFY, "sqlite": events_sql.INSERT}

# Called after each event written by this process (before its commit): the event
# hub reads the log soon after, so local waiters need not wait for the next poll.
_listeners: list[Callable[[], None]] = []


def on_event_recorded(listener: Callable[[], None]) -> Callable[[], None]:
    """Register `listener`; returns the function that unregisters it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


async def record_event(
    conn: DB,
    event_type: EventType,
    session_id: str,
    *,
    call_id: str | None = None,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event, in `conn`'s transaction (PostgreSQL: NOTIFY at its commit)."""
    values = [event_type.value, session_id, call_id, actor, json_or_none(data), utc_now()]
    await conn.execute_query(sql(conn, _INSERT[conn.capabilities.dialect]), values)
    for listener in _listeners:
        listener()


def _read(row: dict[str, Any]) -> dict[str, Any]:
    row["type"] = str(row["type"])
    row["created_at"] = as_utc(row["created_at"])
    return row


async def read_events(
    db: DB,
    *,
    after: int = 0,
    limit: int = 100,
    types: Collection[str] | None = None,
    session_id: str | None = None,
    call_id: str | None = None,
) -> list[dict[str, Any]]:
    """Events with an id above `after`, oldest first, optionally only of `types`,
    of one session or of one call."""
    require_positive_int(after, "after", allow_zero=True)
    require_positive_int(limit, "limit")
    query = Event.filter(id__gt=after).using_db(db)
    if types:
        query = query.filter(type__in=[validate(EventType, t, "types") for t in types])
    if session_id is not None:
        query = query.filter(session_id=lookup_id(session_id))
    if call_id is not None:
        query = query.filter(call_id=lookup_id(call_id, "call_id"))
    rows = await query.order_by("id").limit(limit).values(*EVENT_FIELDS)
    return [_read(row) for row in rows]


async def get_approval_events(db: DB, call_id: str) -> list[dict[str, Any]]:
    """The audit trail of one tool call, oldest first (a deleted approval keeps it);
    `NotFoundError` if the call was never recorded."""
    call_id = lookup_id(call_id, "call_id")
    rows = await Event.filter(call_id=call_id).using_db(db).order_by("id").values(*EVENT_FIELDS)
    if not rows and not await PendingApproval.filter(call_id=call_id).using_db(db).exists():
        raise NotFoundError(f"approval {call_id!r} not found")
    return [_read(row) for row in rows]


async def last_event_id(db: DB) -> int:
    """The id of the newest event (0 for an empty log)."""
    newest = await Event.all().using_db(db).order_by("-id").limit(1).values("id")
    return int(newest[0]["id"]) if newest else 0
