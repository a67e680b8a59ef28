"""Session endpoints of the design note: load and save a whole session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from agent_runtime.core.dependencies import DBService, DBSession
from agent_runtime.errors import NotFoundError

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.get("/{session_id}")
async def get_session(session_id: str, db: DBSession, db_service: DBService) -> dict[str, Any]:
    """Load a session with its messages in saved order."""
    session_data = await db_service.load_session(db, session_id)
    if not session_data:
        raise NotFoundError(f"session {session_id!r} not found")
    return session_data


@router.post("/{session_id}")
async def save_session(
    session_id: str, messages: list[dict[str, Any]], db: DBSession, db_service: DBService
) -> dict[str, str]:
    """Replace the session's messages (creating the session if needed)."""
    await db_service.save_session(
        db=db, session_id=session_id, messages=messages, last_activity=datetime.now(UTC)
    )
    return {"status": "saved"}
