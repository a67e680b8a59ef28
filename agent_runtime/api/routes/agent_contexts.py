"""Agent contexts: which agent drives a session, and the switches between agents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from agent_runtime.api.routes._params import INVALID, READS, WRITES, errors
from agent_runtime.core.dependencies import DBSession
from agent_runtime.core.params import SessionId
from agent_runtime.errors import NotFoundError
from agent_runtime.schemas.agent_contexts import (
    AgentContextCreate,
    AgentContextListRead,
    AgentContextRead,
    AgentSwitchListRead,
)
from agent_runtime.services import agent_contexts as agent_context_service

router = APIRouter(
    tags=["agent contexts"],
    responses=INVALID,
)
_404 = errors({404: "unknown session or no context"})


@router.get("/agent-contexts", dependencies=READS, response_model=AgentContextListRead)
async def list_agent_contexts(db: DBSession) -> dict[str, Any]:
    """Ids of the sessions that have an agent context."""
    return {"session_ids": await agent_context_service.list_all_contexts(db)}


@router.put(
    "/sessions/{session_id}/agent-context",
    dependencies=WRITES,
    response_model=AgentContextRead,
    responses=_404,
)
async def put_agent_context(
    session_id: SessionId, context: AgentContextCreate, db: DBSession
) -> dict[str, Any]:
    """Create or replace the session's agent context and its switch history."""
    history = [entry.model_dump(by_alias=True) for entry in context.agent_history]
    saved = await agent_context_service.put_agent_context(
        db,
        session_id,
        context.current_agent,
        history,
        context.metadata,
        context.created_at or datetime.now(UTC),
        context.last_switch_at,
        context.switch_count,
    )
    if not saved:
        raise NotFoundError(f"session {session_id!r} not found")
    loaded = await agent_context_service.load_agent_context(db, session_id)
    assert loaded is not None
    return loaded


@router.get(
    "/sessions/{session_id}/agent-context",
    dependencies=READS,
    response_model=AgentContextRead,
    responses=_404,
)
async def get_agent_context(session_id: SessionId, db: DBSession) -> dict[str, Any]:
    context = await agent_context_service.load_agent_context(db, session_id)
    if context is None:
        raise NotFoundError(f"no agent context for session {session_id!r}")
    return context


@router.delete(
    "/sessions/{session_id}/agent-context",
    dependencies=WRITES,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_404,
)
async def delete_agent_context(session_id: SessionId, db: DBSession) -> None:
    if not await agent_context_service.delete_agent_context(db, session_id):
        raise NotFoundError(f"no agent context for session {session_id!r}")


@router.get(
    "/sessions/{session_id}/agent-switches", dependencies=READS, response_model=AgentSwitchListRead
)
async def list_agent_switches(
    session_id: SessionId,
    db: DBSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The session's agent switches, newest first."""
    return {"items": await agent_context_service.get_agent_switch_history(db, session_id, limit)}
