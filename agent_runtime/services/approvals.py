"""Tool calls waiting for a human decision."""

from __future__ import annotations

from typing import Any

from agent_runtime.errors import InvalidInputError
from agent_runtime.services._common import DB, optional_mapping, require_id, require_str
from agent_runtime.timeutils import as_utc, utc_now
from models import ApprovalStatus, PendingApproval

__all__ = [
    "DECISION_STATUSES",
    "delete_pending_approval",
    "get_pending_approvals",
    "save_pending_approval",
    "update_approval_status",
]

DECISION_STATUSES = frozenset(
    {ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.CANCELLED}
)


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
    args = optional_mapping(arguments, "arguments")
    await PendingApproval.bulk_create(
        [
            PendingApproval(
                session_id=require_id(session_id),
                call_id=require_id(call_id, "call_id"),
                tool_name=require_str(tool_name, "tool_name", max_length=255),
                arguments=args if args is not None else {},
                reason=require_str(reason, "reason", optional=True),
                created_at=utc_now(),
                status=ApprovalStatus.PENDING,
            )
        ],
        ignore_conflicts=True,
        using_db=db,
    )


async def get_pending_approvals(db: DB, session_id: str) -> list[dict[str, Any]]:
    """The session's approvals still pending, oldest first."""
    rows = await (
        PendingApproval.filter(session_id=session_id, status=ApprovalStatus.PENDING)
        .using_db(db)
        .order_by("created_at", "id")
        .values("call_id", "tool_name", "arguments", "reason", "created_at")
    )
    for row in rows:
        row["created_at"] = as_utc(row["created_at"])
    return rows


async def delete_pending_approval(db: DB, call_id: str) -> bool:
    deleted = await PendingApproval.filter(call_id=call_id).using_db(db).delete()
    return deleted > 0


async def update_approval_status(db: DB, call_id: str, status: str) -> bool:
    """Set the status to approved, rejected or cancelled; anything else raises
    `InvalidInputError` and changes nothing. False if the call is unknown."""
    if status not in DECISION_STATUSES:
        allowed = ", ".join(sorted(DECISION_STATUSES))
        raise InvalidInputError(f"status must be one of {allowed}, got {status!r}")
    updated = (
        await PendingApproval.filter(call_id=call_id)
        .using_db(db)
        .update(status=ApprovalStatus(status))
    )
    return updated > 0
