"""Maintenance: retention runs."""

from __future__ import annotations

from fastapi import APIRouter

from agent_runtime.api.routes._params import INVALID
from agent_runtime.core.dependencies import DBService, DBSession
from agent_runtime.schemas.maintenance import CleanupCreate, CleanupRead

router = APIRouter(
    prefix="/maintenance",
    tags=["maintenance"],
    responses=INVALID,
)


@router.post("/cleanup", response_model=CleanupRead)
async def cleanup(policy: CleanupCreate, db: DBSession, db_service: DBService) -> CleanupRead:
    """Soft-delete sessions idle longer than `idle_hours`, then hard-delete sessions
    soft-deleted more than `purge_deleted_after_days` ago."""
    soft = hard = 0
    if policy.idle_hours is not None:
        soft = await db_service.cleanup_old_sessions(db, policy.idle_hours)
    if policy.purge_deleted_after_days is not None:
        hard = await db_service.hard_delete_old_sessions(db, policy.purge_deleted_after_days)
    return CleanupRead(soft_deleted=soft, hard_deleted=hard)
