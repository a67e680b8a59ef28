"""Tool calls waiting for a human decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from agent_runtime.errors import ConflictError, InvalidInputError, NotFoundError
from agent_runtime.schemas.approvals import ApprovalIn
from agent_runtime.schemas.types import JSONObject, Name, StorableText
from agent_runtime.schemas.validation import (
    lookup_id,
    require_decision,
    require_positive_int,
    validate,
)
from agent_runtime.services._common import DB, atomic
from agent_runtime.services._sql import db_datetime, json_dumps, json_loads, sql
from agent_runtime.services.events import record_event
from agent_runtime.timeutils import as_utc, utc_now
from models import DECISIONS, RUN_STATUSES, ApprovalStatus, EventType, PendingApproval
from models.queries import approvals as approvals_sql

__all__ = [
    "APPROVAL_FIELDS",
    "DECISION_STATUSES",
    "ApprovalPage",
    "count_approvals",
    "create_approval",
    "decide_approval",
    "delete_pending_approval",
    "get_approval",
    "get_pending_approvals",
    "list_approvals",
    "pending_approval_stats",
    "read_approval",
    "require_decision",
    "save_pending_approval",
    "update_approval_status",
]

DECISION_STATUSES = DECISIONS  # kept for importers of the earlier name
# What a reader sees: every column but the claim token's hash (the id only for paging).
APPROVAL_FIELDS = tuple(
    c
    for c in (*approvals_sql.INSERT_COLUMNS, *sorted(approvals_sql.INSERT_LEFT_OUT))
    if c != "claim_token_hash"
)
_FIELDS = ("id", *APPROVAL_FIELDS)
_DATETIMES = ("created_at", "decided_at", "claimed_at", "claim_expires_at", "finished_at")


@dataclass(frozen=True, slots=True)
class _NewApproval:
    call_id: str
    session_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None
    created_at: datetime

    async def insert(self, db: DB) -> bool:
        """Insert it, with its creation event; False if the call_id was taken."""
        async with atomic(db) as conn:
            # execute_query_dict: Tortoise's asyncpg execute_query counts no INSERTed rows.
            rows = await conn.execute_query_dict(
                sql(conn, approvals_sql.CREATE),
                [
                    self.call_id,
                    self.session_id,
                    self.tool_name,
                    json_dumps(self.arguments),
                    self.reason,
                    self.created_at,
                    ApprovalStatus.PENDING.value,
                ],
            )
            if rows:
                await record_event(
                    conn,
                    EventType.APPROVAL_CREATED,
                    self.session_id,
                    call_id=self.call_id,
                    data={"tool_name": self.tool_name, "arguments": self.arguments},
                )
        return bool(rows)


def _new_approval(
    session_id: str, call_id: str, tool_name: str, arguments: Any, reason: str | None
) -> _NewApproval:
    given = {"session_id": session_id, "call_id": call_id, "tool_name": tool_name}
    if arguments is not None:  # the legacy service took None for "no arguments"
        given["arguments"] = arguments
    approval = validate(ApprovalIn, {**given, "reason": reason})
    return _NewApproval(**approval.model_dump(), created_at=utc_now())


def read_approval(row: dict[str, Any]) -> dict[str, Any]:
    """A row of `APPROVAL_FIELDS` (at least) as the service returns it."""
    out = {k: row[k] for k in APPROVAL_FIELDS}
    out["status"] = str(row["status"])
    for key in _DATETIMES:
        out[key] = as_utc(row[key]) if row[key] else None
    return out


async def save_pending_approval(
    db: DB,
    session_id: str,
    call_id: str,
    tool_name: str,
    arguments: dict[str, Any],
    reason: str | None = None,
) -> None:
    """Record a pending approval. A second save of the same `call_id` is a no-op,
    enforced by the unique constraint, so two concurrent saves cannot both insert."""
    await _new_approval(session_id, call_id, tool_name, arguments, reason).insert(db)


async def create_approval(
    db: DB,
    session_id: str,
    call_id: str,
    tool_name: str,
    arguments: dict[str, Any],
    reason: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Idempotent create: (stored approval, created?). Re-sending the same approval
    returns it unchanged; a different one under an existing `call_id` raises
    `ConflictError`."""
    approval = _new_approval(session_id, call_id, tool_name, arguments, reason)
    created = await approval.insert(db)
    stored = await get_approval(db, approval.call_id)
    if stored is None:  # deleted between the two statements: ask again
        raise ConflictError(f"approval {approval.call_id!r} was deleted meanwhile; retry")
    same = (stored["session_id"], stored["tool_name"], stored["arguments"], stored["reason"]) == (
        approval.session_id,
        approval.tool_name,
        approval.arguments,
        approval.reason,
    )
    if not same:
        raise ConflictError(f"approval {approval.call_id!r} already exists with other content")
    return stored, created


async def get_approval(db: DB, call_id: str) -> dict[str, Any] | None:
    call_id = lookup_id(call_id, "call_id")
    row = await PendingApproval.filter(call_id=call_id).using_db(db).first().values(*_FIELDS)
    return read_approval(row) if row else None


async def get_pending_approvals(db: DB, session_id: str) -> list[dict[str, Any]]:
    """The session's approvals still pending, oldest first."""
    session_id = lookup_id(session_id)
    _, rows = await db.execute_query(sql(db, approvals_sql.SELECT_PENDING), [session_id])
    return [
        {
            "call_id": call_id,
            "tool_name": tool_name,
            "arguments": json_loads(arguments) if isinstance(arguments, str | bytes) else arguments,
            "reason": reason,
            "created_at": db_datetime(created_at),
        }
        for call_id, tool_name, arguments, reason, created_at in rows
    ]


@dataclass(frozen=True)
class ApprovalPage:
    items: list[dict[str, Any]]
    next_key: tuple[datetime, int] | None  # (created_at, id) of the last item


async def list_approvals(
    db: DB,
    *,
    limit: int,
    status: str | None = None,
    session_id: str | None = None,
    tool_name: str | None = None,
    after: tuple[datetime, int] | None = None,
) -> ApprovalPage:
    """Approvals across sessions, oldest first, optionally by status, session and tool."""
    require_positive_int(limit, "limit")
    query = _filtered(db, status, session_id, tool_name)
    if after is not None:
        created = as_utc(after[0])
        last_id = require_positive_int(after[1], "after", allow_zero=True)
        query = query.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=last_id))
    rows = await query.order_by("created_at", "id").limit(limit + 1).values(*_FIELDS)
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = (as_utc(rows[-1]["created_at"]), rows[-1]["id"]) if more else None
    return ApprovalPage([read_approval(r) for r in rows], next_key)


def _filtered(
    db: DB, status: str | None, session_id: str | None, tool_name: str | None
) -> QuerySet[PendingApproval]:
    query = PendingApproval.all().using_db(db)
    if status is not None:
        query = query.filter(status=validate(ApprovalStatus, status, "status"))
    if session_id is not None:
        query = query.filter(session_id=lookup_id(session_id))
    if tool_name is not None:
        query = query.filter(tool_name=lookup_id(tool_name, "tool_name"))
    return query


async def count_approvals(
    db: DB,
    *,
    status: str | None = None,
    session_id: str | None = None,
    tool_name: str | None = None,
) -> int:
    """How many approvals `list_approvals` pages through with the same filters."""
    return await _filtered(db, status, session_id, tool_name).count()


async def pending_approval_stats(db: DB) -> tuple[int, datetime | None]:
    """How many approvals are pending, and when the oldest of them was created
    (None if none is): two index reads on (status, created_at)."""
    pending = PendingApproval.filter(status=ApprovalStatus.PENDING).using_db(db)
    count = await pending.count()
    if not count:
        return 0, None
    oldest = await pending.order_by("created_at").first().values_list("created_at", flat=True)
    return count, None if oldest is None else as_utc(cast(datetime, oldest))


async def delete_pending_approval(db: DB, call_id: str) -> bool:
    """Delete the approval (its events stay, with an `approval.deleted` one); False
    if the call is unknown."""
    call_id = lookup_id(call_id, "call_id")
    async with atomic(db) as conn:
        session_ids = (
            await PendingApproval.filter(call_id=call_id)
            .using_db(conn)
            .values_list("session_id", flat=True)
        )
        deleted = await PendingApproval.filter(call_id=call_id).using_db(conn).delete()
        if deleted:
            session_id = str(session_ids[0])
            await record_event(conn, EventType.APPROVAL_DELETED, session_id, call_id=call_id)
    return deleted > 0


_DECISION_EVENT = {
    ApprovalStatus.APPROVED: EventType.APPROVAL_DECIDED,
    ApprovalStatus.REJECTED: EventType.APPROVAL_DECIDED,
    ApprovalStatus.CANCELLED: EventType.APPROVAL_CANCELLED,
}


async def _record_decision(
    conn: DB,
    stored: dict[str, Any],
    *,
    actor: str | None,
    message: str | None = None,
    arguments: dict[str, Any] | None = None,
) -> None:
    data: dict[str, Any] = {"status": stored["status"], "message": message}
    if arguments is not None:
        data["arguments"] = arguments
        data["original_arguments"] = stored["arguments"]
    await record_event(
        conn,
        _DECISION_EVENT[ApprovalStatus(stored["status"])],
        stored["session_id"],
        call_id=stored["call_id"],
        actor=actor,
        data=data,
    )


async def update_approval_status(
    db: DB, call_id: str, status: str, *, decided_by: str | None = None
) -> bool:
    """Set the status to approved, rejected or cancelled (last write wins, as in the
    legacy service); anything else raises `InvalidInputError` and changes nothing.
    False if the call is unknown, or already claimed or run: a tool that has run
    (or is running) is not decided again, or it could run twice. `decided_by`, when
    given, is recorded as who decided (else the stored one is kept)."""
    call_id = lookup_id(call_id, "call_id")
    decision = require_decision(status)
    by = validate(Name | None, decided_by, "decided_by")
    changes: dict[str, Any] = {"status": decision, "decided_at": utc_now()}
    if by is not None:
        changes["decided_by"] = by
    async with atomic(db) as conn:
        updated = (
            await PendingApproval.filter(call_id=call_id)
            .exclude(status__in=RUN_STATUSES)
            .using_db(conn)
            .update(**changes)
        )
        if updated:
            stored = await get_approval(conn, call_id)
            assert stored is not None
            await _record_decision(conn, stored, actor=stored["decided_by"])
    return updated > 0


async def decide_approval(
    db: DB,
    call_id: str,
    status: str,
    *,
    decided_by: str | None = None,
    message: str | None = None,
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide a pending approval, as a compare-and-set from `pending`.

    `message` is the reviewer's text for the agent; `arguments`, only when
    approving, the arguments to run instead of the recorded ones (which stay as
    they were, in `arguments`; the edit is `edited_arguments`). Repeating the
    decision already taken returns the approval unchanged; a different decision
    raises `ConflictError` and changes nothing; an unknown call raises `NotFoundError`.
    """
    call_id = lookup_id(call_id, "call_id")
    decision = require_decision(status)
    by = validate(Name | None, decided_by, "decided_by")
    message = validate(StorableText | None, message, "message")
    arguments = validate(JSONObject | None, arguments, "arguments")
    if arguments is not None and decision != ApprovalStatus.APPROVED:
        raise InvalidInputError(
            "arguments can only be given when approving",
            [{"loc": ["arguments"], "msg": "only when approving", "type": "value_error"}],
        )
    async with atomic(db) as conn:
        updated = (
            await PendingApproval.filter(call_id=call_id, status=ApprovalStatus.PENDING)
            .using_db(conn)
            .update(
                status=decision,
                decided_at=utc_now(),
                decided_by=by,
                message=message,
                edited_arguments=arguments,
            )
        )
        stored = await get_approval(conn, call_id)
        if stored is None:
            raise NotFoundError(f"approval {call_id!r} not found")
        if updated:
            await _record_decision(conn, stored, actor=by, message=message, arguments=arguments)
    if not updated and stored["status"] != decision:
        raise ConflictError(f"approval {call_id!r} is already {stored['status']}", current=stored)
    return stored
