"""The hub for code that uses the service API in-process (`init_database`, no app):
started by the first `wait_for_decision`, stopped by `close_db`."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from agent_runtime.config import get_settings
from agent_runtime.db.config import direct_database_url
from agent_runtime.db.connection import current_database
from agent_runtime.events.hub import EventHub, current_hub, running_hub

__all__ = ["service_api_hub", "stop_service_api_hub"]

_stack: AsyncExitStack | None = None
_starting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None


def _start_lock() -> asyncio.Lock:
    # Concurrent first waits must start one hub: a second would stop the first
    # (the one on "another loop") under the feet of its waiters.
    global _starting
    loop = asyncio.get_running_loop()
    if _starting is None or _starting[0] is not loop:
        _starting = (loop, asyncio.Lock())
    return _starting[1]


async def service_api_hub() -> EventHub:
    async with _start_lock():
        return current_hub() or await _start()


async def _start() -> EventHub:
    global _stack
    db = current_database()
    settings = get_settings()
    await stop_service_api_hub()  # one started on another event loop
    _stack = AsyncExitStack()
    return await _stack.enter_async_context(
        running_hub(
            db,
            poll_seconds=settings.event_poll_seconds,
            listen_on=direct_database_url(settings, db),
            stream_buffer=settings.sse_buffer_events,
            serving=False,
        )
    )


async def stop_service_api_hub() -> None:
    global _stack
    stack, _stack = _stack, None
    if stack is not None:
        await stack.aclose()
