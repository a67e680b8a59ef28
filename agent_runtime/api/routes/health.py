"""Liveness and readiness probes (never behind authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_runtime.core.dependencies import DBConnection
from agent_runtime.schemas.common import ErrorRead
from agent_runtime.schemas.maintenance import LiveRead, ReadyRead
from agent_runtime.services import health as health_service

router = APIRouter(prefix="/health", tags=["health"])

PUBLIC_PATHS = frozenset({"/health/live", "/health/ready"})


@router.get("/live", response_model=LiveRead)
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyRead,
    responses={503: {"model": ErrorRead, "description": "database unreachable or behind"}},
)
async def ready(db: DBConnection) -> dict[str, Any]:
    """The database answers and every migration is applied."""
    return await health_service.readiness(db)
