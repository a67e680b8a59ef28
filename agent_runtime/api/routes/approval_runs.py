"""After the decision: wait for it, claim the approved call, report its outcome, and
read its audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from agent_runtime.api.routes._params import INVALID, READS, WRITES, errors
from agent_runtime.core.dependencies import AppSettings, DBConnection, DBSession, Hub
from agent_runtime.core.params import CallId
from agent_runtime.events import waits
from agent_runtime.schemas.approvals import (
    MAX_WAIT_SECONDS,
    ApprovalClaimCreate,
    ApprovalClaimRead,
    ApprovalEventRead,
    ApprovalRead,
    ApprovalResultCreate,
)
from agent_runtime.services import claims as claim_service
from agent_runtime.services import events as event_service

router = APIRouter(tags=["approvals"], responses=INVALID)
_404 = errors({404: "unknown approval"})

WaitTimeout = Annotated[
    float,
    Query(
        gt=0,
        le=MAX_WAIT_SECONDS,
        description="seconds to wait at most (0 < timeout <= 60)",
    ),
]


@router.get(
    "/approvals/{call_id}/wait", dependencies=READS, response_model=ApprovalRead, responses=_404
)
async def wait_for_decision(
    call_id: CallId,
    db: DBConnection,
    hub: Hub,
    timeout: WaitTimeout = 30.0,  # noqa: ASYNC109 - the query parameter, not a deadline
) -> dict[str, Any]:
    """The approval as soon as it is no longer `pending`, or at the timeout (then
    still `pending`: ask again). Holds no database connection while it waits."""
    return await waits.wait_for_decision(call_id, timeout, db=db, hub=hub)


@router.post(
    "/approvals/{call_id}/claim",
    dependencies=WRITES,
    response_model=ApprovalClaimRead,
    responses={
        **_404,
        **errors(
            {
                409: "not approved, claimed by another caller whose lease holds, or already "
                "run (`error.current` is the approval, with the outcome)"
            }
        ),
    },
)
async def claim_approval(
    call_id: CallId,
    db: DBSession,
    settings: AppSettings,
    claim: Annotated[ApprovalClaimCreate | None, Body()] = None,
) -> dict[str, Any]:
    """Take an approved call to run it: the `claim_token` is given once. Run the tool
    only after a 200, then report the outcome with the token."""
    token, approval = await claim_service.claim_approval(
        db,
        call_id,
        claimed_by=claim.claimed_by if claim else None,
        lease_seconds=settings.claim_lease_seconds,
    )
    return {**approval, "claim_token": token}


@router.post(
    "/approvals/{call_id}/result",
    dependencies=WRITES,
    response_model=ApprovalRead,
    responses={**_404, **errors({409: "not the current claim's token, or its lease ended"})},
)
async def report_result(
    call_id: CallId, report: ApprovalResultCreate, db: DBSession
) -> dict[str, Any]:
    """Record the outcome of the claimed call: `executed` or `failed`, with any JSON
    `result`. Sending the same report again returns the approval unchanged."""
    return await claim_service.report_result(
        db, call_id, report.claim_token, report.status, report.result
    )


@router.get(
    "/approvals/{call_id}/events",
    dependencies=READS,
    response_model=list[ApprovalEventRead],
    responses=_404,
)
async def get_approval_events(call_id: CallId, db: DBConnection) -> list[dict[str, Any]]:
    """The call's audit trail, oldest first: created, decided, claimed, executed ...
    (kept after the approval is deleted)."""
    return await event_service.get_approval_events(db, call_id)
