"""The Server-Sent Events stream of `GET /events`.

Every event of the log after the client's last id, in order, exactly once: first
what the log holds (read in pages), then what the hub hands over live; an event
seen in both is sent once (ids only grow). A client reconnecting with
`Last-Event-ID` resumes after it, across server restarts too, since the ids are
the log's. A client that does not read as fast as events come has its stream
closed once the hub holds `stream_buffer` events or `stream_buffer_bytes` of them
for it (`AGENT_RUNTIME__SSE_BUFFER_EVENTS`, `AGENT_RUNTIME__SSE_BUFFER_BYTES`):
it reconnects and resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import orjson
from sse_starlette import ServerSentEvent

from agent_runtime.events.hub import EventHub
from agent_runtime.schemas.validation import require_positive_int
from agent_runtime.services.events import read_events

__all__ = ["PAGE", "event_stream", "first_page"]

PAGE = 500


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    data = {**event, "created_at": event["created_at"].isoformat()}
    return ServerSentEvent(orjson.dumps(data).decode(), id=str(event["id"]), event=event["type"])


async def first_page(
    hub: EventHub, after: int, types: Collection[str] | None, session_id: str | None
) -> list[dict[str, Any]]:
    """The log's first page after `after`; read before the response starts, so an
    unreachable database is answered 503 rather than with a broken stream. An
    `after` no event id can reach (negative, or beyond 64 bits) is invalid input."""
    require_positive_int(after, "Last-Event-ID / after (an event id)", allow_zero=True)
    return await read_events(
        hub.connection(), after=after, limit=PAGE, types=types, session_id=session_id
    )


async def event_stream(
    hub: EventHub,
    after: int,
    first: list[dict[str, Any]],
    types: Collection[str] | None,
    session_id: str | None,
    *,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
    check_every: float | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """`first` (from `first_page`), the rest of the log, then live events. Ends when
    the client fell `hub.stream_buffer` events or `hub.stream_buffer_bytes` behind:
    it reconnects and resumes.

    With `still_allowed` (e.g. "is the console login still live?"), it is asked
    before each batch is sent and at least every `check_every` seconds while none
    comes; once it says no, the stream ends and nothing more is sent."""
    last = after
    with hub.subscribe(types, session_id) as subscription:
        page = first
        while True:
            if page and still_allowed is not None and not await still_allowed():
                return
            for event in page:
                last = event["id"]
                yield _sse(event)
            if page is not first and len(page) < PAGE:
                break
            # Read on at least once *after* subscribing: what the hub handed out between
            # `first` and the subscription is in the log, and what comes later is in the
            # subscription, so nothing falls in between.
            page = await read_events(
                hub.connection(), after=last, limit=PAGE, types=types, session_id=session_id
            )
        while not subscription.overflowed or subscription.events:
            events: list[dict[str, Any]] = []
            try:
                # Cancelling take() loses nothing: it empties the queue only once woken.
                async with asyncio.timeout(check_every):
                    events = await subscription.take()
            except TimeoutError:
                pass
            if still_allowed is not None and not await still_allowed():
                return
            for event in events:
                if event["id"] > last:
                    last = event["id"]
                    yield _sse(event)
