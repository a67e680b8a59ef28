"""The inbox: approvals across sessions, oldest first, live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from agent_runtime.console.auth import ConsoleUser, session_login
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import AppSettings, DBSession, Hub
from agent_runtime.errors import InvalidInputError
from agent_runtime.events.hub import EventHub
from agent_runtime.events.stream import PAGE as LOG_PAGE
from agent_runtime.events.stream import first_page
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.services import approvals as approval_service
from agent_runtime.services import console_sessions as console_session_service
from agent_runtime.services import events as event_service
from agent_runtime.timeutils import parse_datetime
from models import ApprovalStatus, EventType

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


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    """One event as `GET /events` sends it (events/stream.py)."""
    data = {**event, "created_at": event["created_at"].isoformat()}
    return ServerSentEvent(orjson.dumps(data).decode(), id=str(event["id"]), event=event["type"])


async def _while_logged_in(
    hub: EventHub, token: str, after: int, first: list[dict[str, Any]], check_every: float
) -> AsyncIterator[ServerSentEvent]:
    """The inbox's events as `events.stream.event_stream` sends them (`first`, the
    rest of the log, then live events, each once), for as long as the login lasts.

    The console session is looked up again (one query by its indexed token hash, on
    the hub's connection: no transaction held) before each batch is sent, and at
    least every `check_every` seconds while none comes. Once it has ended (logged
    out, a new password, the reviewer removed, expired) the stream ends, and nothing
    is sent after: an approval created after the logout never reaches the page.
    """
    db = hub.connection()

    async def logged_in() -> bool:
        return await console_session_service.console_login(db, token) is not None

    last = after
    with hub.subscribe(APPROVAL_EVENTS, None) as subscription:
        page = first
        while True:
            if page and not await logged_in():
                return
            for event in page:
                last = event["id"]
                yield _sse(event)
            if page is not first and len(page) < LOG_PAGE:
                break
            # Read on at least once *after* subscribing (as event_stream does): what
            # the hub handed out before the subscription is in the log.
            page = await event_service.read_events(
                db, after=last, limit=LOG_PAGE, types=APPROVAL_EVENTS, session_id=None
            )
        while not subscription.overflowed or subscription.events:
            events: list[dict[str, Any]] = []
            try:
                # Cancelling take() loses nothing: it empties the queue only once woken.
                async with asyncio.timeout(check_every):
                    events = await subscription.take()
            except TimeoutError:
                pass
            if not await logged_in():
                return
            for event in events:
                if event["id"] > last:
                    last = event["id"]
                    yield _sse(event)


@router.get("/events")
async def inbox_events(
    request: Request,
    hub: Hub,
    settings: AppSettings,
    last_event: Annotated[int | None, Header(alias="last-event-id", ge=0)] = None,
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
        _while_logged_in(hub, token, start, first, settings.sse_heartbeat_seconds),
        ping=settings.sse_heartbeat_seconds,
        headers={"X-Accel-Buffering": "no"},
    )
