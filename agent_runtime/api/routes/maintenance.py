"""Maintenance: retention runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_runtime.api.routes._params import INVALID, MAINTAINS
from agent_runtime.core.dependencies import DBSession
from agent_runtime.schemas.maintenance import CleanupCreate, CleanupRead
from agent_runtime.services import retention as retention_service
from agent_runtime.services.retention import RetentionPolicy

router = APIRouter(
    prefix="/maintenance",
    tags=["maintenance"],
    responses=INVALID,
)


@router.post("/cleanup", dependencies=MAINTAINS, response_model=CleanupRead)
async def cleanup(policy: CleanupCreate, db: DBSession) -> dict[str, Any]:
    """Soft-delete sessions idle longer than `idle_hours`, hard-delete sessions
    soft-deleted more than `purge_deleted_after_days` ago, expire approvals pending
    longer than `expire_approvals_after_hours`, keep only the latest `keep_checkpoints`
    LangGraph checkpoints of each thread; null skips a step."""
    report = await retention_service.run_retention(
        db,
        RetentionPolicy(
            idle_hours=policy.idle_hours,
            purge_deleted_after_days=policy.purge_deleted_after_days,
            expire_approvals_after_hours=policy.expire_approvals_after_hours,
            keep_checkpoints=policy.keep_checkpoints,
        ),
        dry_run=policy.dry_run,
    )
    return report.as_dict()
