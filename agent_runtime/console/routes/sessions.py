"""Sessions, read-only: search and page through them, read one whole."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_runtime.api.pagination import decode_cursor, encode_cursor
from agent_runtime.api.routes._params import SessionId
from agent_runtime.console.auth import ConsoleUser
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import DBSession
from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.services.agent_contexts import get_agent_switch_history, load_agent_context
from agent_runtime.services.approvals import list_approvals
from agent_runtime.services.messages import list_messages
from agent_runtime.services.sessions import get_session, list_sessions
from agent_runtime.timeutils import parse_datetime

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
        after = (parse_datetime(value[0], "cursor"), str(value[1]))
    page = await list_sessions(db, limit=PAGE, after=after, search=q.strip() or None)
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
    if after is not None and after < 0:
        raise InvalidInputError("after must be a message position (0 or more)")
    session = await get_session(db, session_id)
    messages = await list_messages(db, session_id, limit=MESSAGES_PAGE, after=after)
    if session is None or messages is None:
        raise NotFoundError(f"there is no session {session_id!r}")
    context = {
        "session": session,
        "messages": messages,
        "context": await load_agent_context(db, session_id),
        "switches": await get_agent_switch_history(db, session_id),
        "approvals": (await list_approvals(db, limit=APPROVALS_SHOWN, session_id=session_id)).items,
    }
    return render(request, "session.html", context)
