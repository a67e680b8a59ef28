"""The event log: what happened to approvals, and session saves, in commit order.

`record_event` writes one entry inside the caller's transaction (so it commits,
or not, with the change it records); the readers page through the log by id.
On PostgreSQL the entry waits in `pending_events` until `sequence_events` moves
it into the log, once committed (models/queries/events.py says why); readers call
it first, so what has committed is in the log they read. Entries are never
updated or deleted, except with their session when retention hard-deletes it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from agent_runtime.errors import NotFoundError
from agent_runtime.schemas.validation import lookup_id, require_positive_int, validate
from agent_runtime.services._common import DB, event_written, outside_transactions
from agent_runtime.services._sql import json_or_none, sql
from agent_runtime.timeutils import as_utc, utc_now
from models import Event, EventType, PendingApproval
from models.queries import events as events_sql

__all__ = [
    "EVENT_FIELDS",
    "get_approval_events",
    "last_event_id",
    "read_events",
    "record_event",
    "sequence_events",
]

EVENT_FIELDS = ("id", "type", "session_id", "call_id", "actor", "data", "created_at")
_INSERT = {"postgres": events_sql.INSERT_PENDING, "sqlite": events_sql.INSERT}


async def record_event(
    conn: DB,
    event_type: EventType,
    session_id: str,
    *,
    call_id: str | None = None,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event, in `conn`'s transaction: it enters the log when (and only
    if) the transaction commits. No lock: writers never wait for each other."""
    values = [event_type.value, session_id, call_id, actor, json_or_none(data), utc_now()]
    await conn.execute_query(sql(conn, _INSERT[conn.capabilities.dialect]), values)
    event_written()


async def sequence_events(db: DB) -> int:
    """PostgreSQL: move the committed pending events into the log, with their ids,
    and NOTIFY the listeners; how many were moved (SQLite: 0, its writers log
    directly). Runs on its own connection, outside any transaction of `db`: a
    caller's transaction would hold the log's lock until it ends."""
    if db.capabilities.dialect != "postgres":
        return 0
    rows = await outside_transactions(db).execute_query_dict(events_sql.SEQUENCE)
    return int(rows[0]["moved"]) if rows else 0


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
    of one session or of one call; every event committed before the call is in
    the log it reads."""
    require_positive_int(after, "after", allow_zero=True)
    require_positive_int(limit, "limit")
    await sequence_events(db)  # what has committed is in the log
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
    await sequence_events(db)
    rows = await Event.filter(call_id=call_id).using_db(db).order_by("id").values(*EVENT_FIELDS)
    if not rows and not await PendingApproval.filter(call_id=call_id).using_db(db).exists():
        raise NotFoundError(f"approval {call_id!r} not found")
    return [_read(row) for row in rows]


async def last_event_id(db: DB) -> int:
    """The id of the newest event (0 for an empty log), all committed ones logged."""
    await sequence_events(db)
    newest = await Event.all().using_db(db).order_by("-id").limit(1).values("id")
    return int(newest[0]["id"]) if newest else 0
