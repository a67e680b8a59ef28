"""Sessions, read-only: search and page through them, read one whole."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_runtime.console.auth import ConsoleUser
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import DBSession
from agent_runtime.core.params import SessionId
from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.services import agent_contexts as agent_context_service
from agent_runtime.services import approvals as approval_service
from agent_runtime.services import messages as message_service
from agent_runtime.services import sessions as session_service
from agent_runtime.timeutils import parse_datetime
from models.limits import INT_MAX

router = APIRouter()

PAGE = 50
MESSAGES_PAGE = 50
APPROVALS_SHOWN = 100


@router.get("/sessions")
async def sessions_list(
    request: Request, login: ConsoleUser, db: DBSession, q: str = "", cursor: str = ""
) -> Response:
    after = None
    if cursor:
        value = decode_cursor("console-sessions", cursor)
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
            raise InvalidInputError("invalid console-sessions cursor")
        after = (parse_datetime(value[0], "cursor"), value[1])
    page = await session_service.list_sessions(
        db, limit=PAGE, after=after, search=q.strip() or None
    )
    next_cursor = None
    if page.next_key is not None:
        next_cursor = encode_cursor(
            "console-sessions", [page.next_key[0].isoformat(), page.next_key[1]]
        )
    context = {"sessions": page.items, "q": q, "next_cursor": next_cursor}
    return render(request, "sessions.html", context)


@router.get("/sessions/{session_id}")
async def session_detail(
    request: Request,
    session_id: SessionId,
    login: ConsoleUser,
    db: DBSession,
    after: int | None = None,
) -> Response:
    if after is not None and not 0 <= after <= INT_MAX:
        raise InvalidInputError(f"after must be a message position (0 to {INT_MAX})")
    session = await session_service.get_session(db, session_id)
    messages = await message_service.list_messages(db, session_id, limit=MESSAGES_PAGE, after=after)
    if session is None or messages is None:
        raise NotFoundError(f"there is no session {session_id!r}")
    context = {
        "session": session,
        "messages": messages,
        "context": await agent_context_service.load_agent_context(db, session_id),
        "switches": await agent_context_service.get_agent_switch_history(db, session_id),
        "approvals": (
            await approval_service.list_approvals(db, limit=APPROVALS_SHOWN, session_id=session_id)
        ).items,
    }
    return render(request, "session.html", context)
