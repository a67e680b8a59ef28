"""`GET /events`: the event log as a live Server-Sent Events stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from agent_runtime.api.routes._params import INVALID, READS
from agent_runtime.core.dependencies import AppSettings, Hub
from agent_runtime.events.stream import event_stream, first_page
from agent_runtime.services import events as event_service
from models.limits import BIGINT_MAX, ID_MAX

router = APIRouter(tags=["events"], responses=INVALID)


@router.get(
    "/events",
    dependencies=READS,
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def stream_events(
    hub: Hub,
    settings: AppSettings,
    types: Annotated[
        str | None,
        Query(description="comma-separated event types, e.g. approval.created,approval.decided"),
    ] = None,
    session_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=BIGINT_MAX)] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=BIGINT_MAX, description="resume after this id (as `Last-Event-ID`)"),
    ] = None,
) -> EventSourceResponse:
    """Every event after `Last-Event-ID` (or `after`; default: from now on), then live
    ones: `id:` is the event's position in the log, `event:` its type, `data:` the
    event as JSON. A heartbeat comment comes every 15 s. A client too slow to keep
    up has its stream closed: reconnect with `Last-Event-ID` to resume."""
    # Checked by the service (422 for an unknown type) when the first page is read.
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await event_service.last_event_id(hub.connection())  # from now on
    first = await first_page(hub, start, wanted, session_id)
    return EventSourceResponse(
        event_stream(hub, start, first, wanted, session_id),
        ping=settings.sse_heartbeat_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
