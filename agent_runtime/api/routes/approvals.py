"""Tool approvals: record a pending tool call, list the inbox, decide."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from agent_runtime.api.routes._params import INVALID, READS, WRITES, Limit, errors
from agent_runtime.core.auth import Decider
from agent_runtime.core.dependencies import DBSession
from agent_runtime.core.params import CallId, SessionId
from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.schemas.approvals import (
    ApprovalCreate,
    ApprovalDecisionCreate,
    ApprovalPageRead,
    ApprovalRead,
    ApprovalStatusRead,
    ApprovalStatusUpdate,
)
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.services import approvals as approval_service
from agent_runtime.timeutils import parse_datetime
from models import ApprovalStatus
from models.limits import ID_MAX

router = APIRouter(
    tags=["approvals"],
    responses=INVALID,
)
_404 = errors({404: "unknown approval"})
_409 = errors({409: "conflicts with the stored approval"})


def _approval_key(cursor: str) -> tuple[datetime, int]:
    value = decode_cursor("approvals", cursor)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)):
        raise InvalidInputError("invalid approvals cursor")
    return parse_datetime(value[0], "cursor"), value[1]


async def _page(
    db: DBSession,
    limit: int,
    cursor: str | None,
    status_filter: str | None,
    session_id: str | None,
) -> dict[str, Any]:
    page = await approval_service.list_approvals(
        db,
        limit=limit,
        status=status_filter,
        session_id=session_id,
        after=_approval_key(cursor) if cursor else None,
    )
    next_cursor = None
    if page.next_key is not None:
        next_cursor = encode_cursor("approvals", [page.next_key[0].isoformat(), page.next_key[1]])
    return {"items": page.items, "next_cursor": next_cursor}


@router.post(
    "/approvals",
    dependencies=WRITES,
    response_model=ApprovalRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ApprovalRead, "description": "already recorded"}, **_409},
)
async def create_approval(
    approval: ApprovalCreate, response: Response, db: DBSession
) -> dict[str, Any]:
    """Record a tool call waiting for a decision: 201 when new, 200 when the same
    approval was already recorded, 409 when `call_id` exists with other content."""
    stored, created = await approval_service.create_approval(
        db,
        approval.session_id,
        approval.call_id,
        approval.tool_name,
        approval.arguments,
        approval.reason,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return stored


@router.get("/approvals", dependencies=READS, response_model=ApprovalPageRead)
async def list_approvals(
    db: DBSession,
    status_filter: Annotated[ApprovalStatus | None, Query(alias="status")] = None,
    session_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The approvals inbox across sessions, oldest first, filtered by status and session."""
    return await _page(db, limit, cursor, status_filter, session_id)


@router.get("/sessions/{session_id}/approvals", dependencies=READS, response_model=ApprovalPageRead)
async def list_session_pending_approvals(
    session_id: SessionId,
    db: DBSession,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The session's pending approvals, oldest first."""
    return await _page(db, limit, cursor, ApprovalStatus.PENDING, session_id)


@router.get("/approvals/{call_id}", dependencies=READS, response_model=ApprovalRead, responses=_404)
async def get_approval(call_id: CallId, db: DBSession) -> dict[str, Any]:
    approval = await approval_service.get_approval(db, call_id)
    if approval is None:
        raise NotFoundError(f"approval {call_id!r} not found")
    return approval


@router.post(
    "/approvals/{call_id}/decision",
    response_model=ApprovalRead,
    responses={**_404, **errors({409: "already decided otherwise"})},
)
async def decide_approval(
    call_id: CallId, decision: ApprovalDecisionCreate, db: DBSession, caller: Decider
) -> dict[str, Any]:
    """Decide a pending approval, optionally with a `message` for the agent and, when
    approving, edited `arguments` (the recorded ones are kept). Only `pending` can be
    decided: repeating the same decision returns the approval unchanged, a different
    one gets 409 (with the stored approval as `error.current`). Needs a reviewer key
    (recorded as `decided_by`, whatever the body says) or an admin key."""
    return await approval_service.decide_approval(
        db,
        call_id,
        decision.status,
        decided_by=caller.reviewer or decision.decided_by,
        message=decision.message,
        arguments=decision.arguments,
    )


@router.put("/approvals/{call_id}/status", response_model=ApprovalStatusRead)
async def update_approval_status(
    call_id: CallId, update: ApprovalStatusUpdate, db: DBSession, caller: Decider
) -> dict[str, bool]:
    """The legacy status update (`update_approval_status`): set `approved`, `rejected`
    or `cancelled` whatever the current decision (last write wins). `updated` is
    false when the call is unknown, or already claimed or run (a tool is not decided
    again once it runs). New code uses the compare-and-set `POST .../decision`. Needs
    a reviewer key (recorded as `decided_by`) or an admin key."""
    updated = await approval_service.update_approval_status(
        db, call_id, update.status, decided_by=caller.reviewer
    )
    return {"updated": updated}


@router.delete(
    "/approvals/{call_id}",
    dependencies=WRITES,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_404,
)
async def delete_approval(call_id: CallId, db: DBSession) -> None:
    if not await approval_service.delete_pending_approval(db, call_id):
        raise NotFoundError(f"approval {call_id!r} not found")
