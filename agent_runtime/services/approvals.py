"""Tool calls waiting for a human decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tortoise.expressions import Q

from agent_runtime.errors import ConflictError, NotFoundError
from agent_runtime.schemas.approvals import ApprovalIn
from agent_runtime.schemas.types import Decision, Name
from agent_runtime.services._common import DB, lookup_id, require_positive_int, validate
from agent_runtime.services._sql import db_datetime, json_dumps, json_loads, sql
from agent_runtime.timeutils import as_utc, utc_now
from models import DECISIONS, ApprovalStatus, PendingApproval
from models.queries import approvals as approvals_sql

__all__ = [
    "DECISION_STATUSES",
    "ApprovalPage",
    "create_approval",
    "decide_approval",
    "delete_pending_approval",
    "get_approval",
    "get_pending_approvals",
    "list_approvals",
    "save_pending_approval",
    "update_approval_status",
]

DECISION_STATUSES = DECISIONS  # kept for importers of the earlier name
# Every column: what the hand-written INSERT writes, the id, and the decision's columns.
_FIELDS = ("id", *approvals_sql.INSERT_COLUMNS, *sorted(approvals_sql.INSERT_LEFT_OUT))


@dataclass(frozen=True, slots=True)
class _NewApproval:
    call_id: str
    session_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str | None
    created_at: datetime

    async def insert(self, db: DB) -> None:
        await db.execute_query(
            sql(db, approvals_sql.INSERT),
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


def _new_approval(
    session_id: str, call_id: str, tool_name: str, arguments: Any, reason: str | None
) -> _NewApproval:
    given = {"session_id": session_id, "call_id": call_id, "tool_name": tool_name}
    if arguments is not None:  # the legacy service took None for "no arguments"
        given["arguments"] = arguments
    approval = validate(ApprovalIn, {**given, "reason": reason})
    return _NewApproval(**approval.model_dump(), created_at=utc_now())


def _read(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in _FIELDS if k != "id"}
    out["status"] = str(row["status"])
    out["created_at"] = as_utc(row["created_at"])
    out["decided_at"] = as_utc(row["decided_at"]) if row["decided_at"] else None
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
    await approval.insert(db)
    stored = await get_approval(db, approval.call_id)
    assert stored is not None
    same = (stored["session_id"], stored["tool_name"], stored["arguments"], stored["reason"]) == (
        approval.session_id,
        approval.tool_name,
        approval.arguments,
        approval.reason,
    )
    if not same:
        raise ConflictError(f"approval {approval.call_id!r} already exists with other content")
    # Only the insert that won carries this call's own creation instant.
    return stored, stored["created_at"] == as_utc(approval.created_at)


async def get_approval(db: DB, call_id: str) -> dict[str, Any] | None:
    call_id = lookup_id(call_id, "call_id")
    row = await PendingApproval.filter(call_id=call_id).using_db(db).first().values(*_FIELDS)
    return _read(row) if row else None


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
    after: tuple[datetime, int] | None = None,
) -> ApprovalPage:
    """Approvals across sessions, oldest first, optionally by status and session."""
    if session_id is not None:
        session_id = lookup_id(session_id)
    require_positive_int(limit, "limit")
    query = PendingApproval.all().using_db(db)
    if status is not None:
        query = query.filter(status=validate(ApprovalStatus, status, "status"))
    if session_id is not None:
        query = query.filter(session_id=session_id)
    if after is not None:
        created, last_id = as_utc(after[0]), after[1]
        query = query.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=last_id))
    rows = await query.order_by("created_at", "id").limit(limit + 1).values(*_FIELDS)
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = (as_utc(rows[-1]["created_at"]), rows[-1]["id"]) if more else None
    return ApprovalPage([_read(r) for r in rows], next_key)


async def delete_pending_approval(db: DB, call_id: str) -> bool:
    call_id = lookup_id(call_id, "call_id")
    deleted = await PendingApproval.filter(call_id=call_id).using_db(db).delete()
    return deleted > 0


def _decision(status: Any) -> ApprovalStatus:
    return cast(ApprovalStatus, validate(Decision, status, "status"))


async def update_approval_status(db: DB, call_id: str, status: str) -> bool:
    """Set the status to approved, rejected or cancelled (last write wins, as in the
    legacy service); anything else raises `InvalidInputError` and changes nothing.
    False if the call is unknown."""
    call_id = lookup_id(call_id, "call_id")
    decision = _decision(status)
    updated = (
        await PendingApproval.filter(call_id=call_id)
        .using_db(db)
        .update(status=decision, decided_at=utc_now())
    )
    return updated > 0


async def decide_approval(
    db: DB, call_id: str, status: str, *, decided_by: str | None = None
) -> dict[str, Any]:
    """Decide a pending approval, as a compare-and-set from `pending`.

    Repeating the decision already taken returns the approval unchanged; a
    different decision raises `ConflictError` and changes nothing; an unknown
    call raises `NotFoundError`.
    """
    call_id = lookup_id(call_id, "call_id")
    decision = _decision(status)
    by = validate(Name | None, decided_by, "decided_by")
    updated = (
        await PendingApproval.filter(call_id=call_id, status=ApprovalStatus.PENDING)
        .using_db(db)
        .update(status=decision, decided_at=utc_now(), decided_by=by)
    )
    stored = await get_approval(db, call_id)
    if stored is None:
        raise NotFoundError(f"approval {call_id!r} not found")
    if not updated and stored["status"] != decision:
        raise ConflictError(f"approval {call_id!r} is already {stored['status']}")
    return stored
