"""The inbox: approvals across sessions, oldest first, live."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse
from starlette.responses import Response
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.console.auth import ConsoleUser, session_login
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import AppSettings, DBSession, Hub
from agent_runtime.errors import InvalidInputError
from agent_runtime.events.stream import event_stream, first_page
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.services import approvals as approval_service
from agent_runtime.services import console_sessions as console_session_service
from agent_runtime.services import events as event_service
from agent_runtime.timeutils import parse_datetime
from models import ApprovalStatus, EventType
from models.limits import BIGINT_MAX

router = APIRouter()

PAGE = 50
STATUSES = ("pending", *(s.value for s in ApprovalStatus if s != "pending"), "all")
# What changes the inbox: everything that happens to an approval.
APPROVAL_EVENTS = [t.value for t in EventType if t.value.startswith("approval.")]


@dataclass(frozen=True)
class InboxFilters:
    tool: str
    session: str
    status: str
    cursor: str

    def query(self) -> dict[str, str]:
        """The filters as query parameters (empty ones left out), for links."""
        pairs = {"tool": self.tool, "session": self.session, "status": self.status}
        return {k: v for k, v in pairs.items() if v and not (k == "status" and v == "pending")}


def _filters(
    tool: str = "", session: str = "", status: str = "pending", cursor: str = ""
) -> InboxFilters:
    if status not in STATUSES:
        raise InvalidInputError(f"status {status!r:.40} is not one of {', '.join(STATUSES)}")
    return InboxFilters(tool.strip(), session.strip(), status, cursor)


Filters = Annotated[InboxFilters, Depends(_filters)]


async def _inbox(db: DBSession, filters: InboxFilters) -> dict[str, Any]:
    after = None
    if filters.cursor:
        value = decode_cursor("inbox", filters.cursor)
        after = (parse_datetime(value[0], "cursor"), int(value[1]))
    status = None if filters.status == "all" else filters.status
    page = await approval_service.list_approvals(
        db,
        limit=PAGE,
        status=status,
        session_id=filters.session or None,
        tool_name=filters.tool or None,
        after=after,
    )
    next_cursor = None
    if page.next_key is not None:
        next_cursor = encode_cursor("inbox", [page.next_key[0].isoformat(), page.next_key[1]])
    return {
        "approvals": page.items,
        "next_cursor": next_cursor,
        "pending": await approval_service.count_approvals(db, status="pending"),
        "filters": filters,
        "statuses": STATUSES,
    }


@router.get("/")
async def inbox(request: Request, login: ConsoleUser, db: DBSession, filters: Filters) -> Response:
    flash = {k: request.query_params.get(k, "") for k in ("done", "n", "skipped")}
    return render(request, "inbox.html", {**await _inbox(db, filters), "flash": flash})


@router.get("/inbox/rows")
async def inbox_rows(
    request: Request, login: ConsoleUser, db: DBSession, filters: Filters
) -> Response:
    """The live part of the inbox, re-read by the page's script when an event arrives."""
    return render(request, "_inbox_live.html", await _inbox(db, filters))


async def _logged_in(db: BaseDBAsyncClient, token: str) -> bool:
    """Whether the console session is still live: one query by its indexed token
    hash, on the hub's connection (a stream holds no transaction). A logout, a new
    password, a removed reviewer or the expiry end it, and with it the stream."""
    return await console_session_service.console_login(db, token) is not None


@router.get("/events")
async def inbox_events(
    request: Request,
    hub: Hub,
    settings: AppSettings,
    last_event: Annotated[int | None, Header(alias="last-event-id", ge=0, le=BIGINT_MAX)] = None,
) -> EventSourceResponse:
    """What happens to approvals, for the inbox page (the browser's EventSource
    resumes with Last-Event-ID by itself), while the reviewer stays logged in."""
    # The hub's connection, not a request transaction: a stream must not hold one.
    token, _ = await session_login(request, hub.connection())
    start = (
        last_event
        if last_event is not None
        else await event_service.last_event_id(hub.connection())
    )
    first = await first_page(hub, start, APPROVAL_EVENTS, None)
    return EventSourceResponse(
        event_stream(
            hub,
            start,
            first,
            APPROVAL_EVENTS,
            None,
            still_allowed=partial(_logged_in, hub.connection(), token),
            check_every=settings.sse_heartbeat_seconds,
        ),
        ping=settings.sse_heartbeat_seconds,
        headers={"X-Accel-Buffering": "no"},
    )
