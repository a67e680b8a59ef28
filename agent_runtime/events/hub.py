"""`EventHub`: one per process, the only reader of new events.

It reads the log after the last id it has seen whenever it is told something
may have happened (a PostgreSQL notification, a local write) or at a bounded
interval, and hands each event to the waiters of its call and to the event
streams. Waiters and streams hold no database connection while they wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import orjson
from sse_starlette.sse import AppStatus
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.events.listener import listen_forever
from agent_runtime.observability.metrics import EVENT_STREAM_CLIENTS, WAITERS
from agent_runtime.services._common import on_events_committed
from agent_runtime.services.events import last_event_id, read_events

__all__ = [
    "STREAM_BUFFER_BYTES",
    "EventHub",
    "Subscription",
    "current_hub",
    "event_size",
    "running_hub",
]

logger = logging.getLogger("agent_runtime.events")

_BATCH = 500
# With working notifications, a safety net: for events committed by a transaction
# this process did not begin (an embedding application's own), whose commit no one
# announces, and which wait in `pending_events` for a reader to move them.
LISTENING_POLL_SECONDS = 0.5
_SHUTDOWN_CHECK_SECONDS = 0.5
STREAM_BUFFER_BYTES = 8 * 1024 * 1024  # the default of AGENT_RUNTIME__SSE_BUFFER_BYTES


def event_size(event: dict[str, Any]) -> int:
    """The bytes of `event` as JSON: about what a stream sends for it (its `data:`)."""
    return len(orjson.dumps(event, default=str))


class Subscription:
    """What one event stream receives: the matching events, up to `maxsize` of them
    and `max_bytes` of their JSON (`event_size`) held at once.

    The last batch handed out by `take` counts until the next `take`: the stream
    holds it while its client reads it. Beyond either bound the subscription is marked
    `overflowed` (the stream then closes and its client resumes from its last id,
    read from the log): a slow reader costs bounded memory, whatever the size of the
    events. One event larger than `max_bytes` is still taken when nothing else is
    held, so that a stream that keeps up is not closed by every large event.
    """

    def __init__(
        self,
        maxsize: int,
        types: Collection[str] | None,
        session_id: str | None,
        max_bytes: int = STREAM_BUFFER_BYTES,
    ) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.types = frozenset(types) if types else None
        self.session_id = session_id
        self.events: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.held_bytes = 0  # of `events` and of the batch last taken
        self._sizes: deque[int] = deque()  # of `events`, in order
        self._taken_bytes = 0

    def matches(self, event: dict[str, Any]) -> bool:
        return (self.types is None or event["type"] in self.types) and (
            self.session_id is None or event["session_id"] == self.session_id
        )

    def offer(self, event: dict[str, Any], size: int | None = None) -> None:
        """Hold `event` if it matches; `size` is its `event_size` (computed if None)."""
        if self.overflowed or not self.matches(event):
            return
        if size is None:
            size = event_size(event)
        too_many = len(self.events) >= self.maxsize
        too_large = self.held_bytes > 0 and self.held_bytes + size > self.max_bytes
        if too_many or too_large:
            self.overflowed = True
            # What is held goes out, then the stream ends: nothing more is needed.
        else:
            self.events.append(event)
            self._sizes.append(size)
            self.held_bytes += size
        self.ready.set()

    async def take(self) -> list[dict[str, Any]]:
        """The events held (waiting for some first); [] once overflowed and drained.
        The previous batch stops counting now: its stream has sent it."""
        self.held_bytes -= self._taken_bytes
        self._taken_bytes = 0
        await self.ready.wait()
        self.ready.clear()
        taken = list(self.events)
        self.events.clear()
        self._taken_bytes = sum(self._sizes)
        self._sizes.clear()
        return taken


class EventHub:
    """Reads new events of the log and dispatches them within this process."""

    def __init__(
        self,
        connection_name: str,
        *,
        poll_seconds: float,
        listen_on: DatabaseURL | None = None,
        stream_buffer: int = 1000,
        stream_buffer_bytes: int = STREAM_BUFFER_BYTES,
        serving: bool = True,
    ) -> None:
        self.connection_name = connection_name
        self.poll_seconds = poll_seconds
        self.listen_on = listen_on
        self.stream_buffer = stream_buffer
        self.stream_buffer_bytes = stream_buffer_bytes
        # A server's hub ends its waits when uvicorn begins shutting down; the
        # service API's own hub (no server) must not: that flag is process-wide
        # and stays set after any in-process server has stopped.
        self.serving = serving
        self.listening = False  # set by the listener while notifications arrive
        self.last_id: int | None = None  # None: not read from the log yet
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._streams: set[Subscription] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._unregister: Callable[[], None] | None = None
        self._failing = False
        self._next_skip = 0.0  # loop time before which SQLite skips no further ahead
        self.closing = False  # the server is shutting down: waits answer now

    # -- what others use -------------------------------------------------------

    def connection(self) -> BaseDBAsyncClient:
        return Tortoise.get_connection(self.connection_name)

    def poke(self) -> None:
        """Something may have been written: read the log now."""
        self._wake.set()

    @contextmanager
    def watch(self, call_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever an event of `call_id` is read. Enter it *before*
        reading the approval, so a decision landing in between is not missed."""
        changed = asyncio.Event()
        self._waiters.setdefault(call_id, set()).add(changed)
        try:
            with WAITERS.track_inprogress():
                yield changed
        finally:
            waiters = self._waiters.get(call_id)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[call_id]

    @contextmanager
    def subscribe(
        self, types: Collection[str] | None = None, session_id: str | None = None
    ) -> Iterator[Subscription]:
        subscription = Subscription(
            self.stream_buffer, types, session_id, max_bytes=self.stream_buffer_bytes
        )
        self._streams.add(subscription)
        try:
            with EVENT_STREAM_CLIENTS.track_inprogress():
                yield subscription
        finally:
            self._streams.discard(subscription)

    @property
    def waiter_count(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def mode(self) -> str:
        """ "listen" (PostgreSQL notifications) or "poll" (reading the log every
        `poll_seconds`)."""
        return "listen" if self.listening else "poll"

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await self._start_at_the_end()
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            logger.warning("event log unreadable at start-up (%r); will retry", exc)
        self._tasks.append(asyncio.create_task(self._read_forever(), name="event-hub"))
        if self.serving:
            self._tasks.append(asyncio.create_task(self._watch_shutdown(), name="event-hub-exit"))
        if self.listen_on is not None:
            self._tasks.append(asyncio.create_task(listen_forever(self), name="event-listener"))
        # A local write's events: read (on PostgreSQL, first move into the log) as soon
        # as its transaction has committed; the other processes hear of them by NOTIFY.
        self._unregister = on_events_committed(self.poke)

    def close(self) -> None:
        """Answer every wait now, so a graceful shutdown is not held up by them."""
        self.closing = True
        for waiters in self._waiters.values():
            for changed in waiters:
                changed.set()

    async def _watch_shutdown(self) -> None:
        # uvicorn's SIGTERM, as seen by sse-starlette (which ends the event streams
        # itself); the lifespan's shutdown only runs once every request has ended.
        while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag set by a signal handler
            await asyncio.sleep(_SHUTDOWN_CHECK_SECONDS)
        self.close()

    async def stop(self) -> None:
        self.close()
        if self._unregister is not None:
            self._unregister()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # Streams end; waiters answer with what they read last.
        for subscription in self._streams:
            subscription.overflowed = True
            subscription.ready.set()

    # -- reading ---------------------------------------------------------------

    async def _read_forever(self) -> None:
        while True:
            interval = LISTENING_POLL_SECONDS if self.listening else self.poll_seconds
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel
            # of stop() when it lands just after the wake-up, and the loop goes on.
            with suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            poked = self._wake.is_set()
            self._wake.clear()
            try:
                await self.read_new(poked=poked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    logger.warning("cannot read the event log (%r); retrying", exc)
                self._failing = True
            else:
                if self._failing:
                    logger.info("event log readable again")
                self._failing = False

    async def _start_at_the_end(self) -> None:
        # What happened before this process started concerns none of its waiters
        # or streams (a stream reads its own past from the log).
        self.last_id = await last_event_id(self.connection())

    async def read_new(self, *, poked: bool = False) -> None:
        """Read and dispatch every event after `last_id`; with no waiter and no
        stream, only move `last_id` to the end of the log (`_skip_ahead`)."""
        if self.last_id is None:
            await self._start_at_the_end()
        if not self._subscribed() and await self._skip_ahead(poked):
            return
        while True:
            after = self.last_id or 0
            events = await read_events(self.connection(), after=after, limit=_BATCH)
            for event in events:
                self._dispatch(event)
                self.last_id = event["id"]
            if len(events) < _BATCH:
                return

    def _subscribed(self) -> bool:
        return bool(self._waiters or self._streams)

    async def _skip_ahead(self, poked: bool) -> bool:
        """With nobody to hand events to, reading them is wasted (on SQLite, a
        quarter of a save's server time): move `last_id` to the newest id instead,
        in one cheap statement (on PostgreSQL, after moving the committed events
        into the log: other processes' waiters are woken by that NOTIFY). On
        SQLite a local commit does not even do that, at most once per poll
        interval, so that the catch-up of a first waiter stays short.

        Whoever subscribes later reads its own state after subscribing, so events
        up to the newest id seen with nobody subscribed concern no one. Returns
        False when someone subscribed meanwhile: then read as usual."""
        connection = self.connection()
        now = asyncio.get_running_loop().time()
        if poked and connection.capabilities.dialect == "sqlite" and now < self._next_skip:
            return True
        newest = await last_event_id(connection)
        if self._subscribed():
            return False
        self.last_id = max(self.last_id or 0, newest)
        self._next_skip = now + self.poll_seconds
        return True

    def _dispatch(self, event: dict[str, Any]) -> None:
        call_id = event["call_id"]
        if call_id is not None:
            for changed in self._waiters.get(call_id, ()):
                changed.set()
        size = None  # computed once, for the first stream that wants the event
        for subscription in self._streams:
            if subscription.overflowed or not subscription.matches(event):
                continue
            if size is None:
                size = event_size(event)
            subscription.offer(event, size)


# The hub of this process: the app's (lifespan), or one started for the service API.
_current: EventHub | None = None


def current_hub() -> EventHub | None:
    hub = _current
    if hub is None or hub.loop is not asyncio.get_running_loop():
        return None
    return hub


@asynccontextmanager
async def running_hub(
    db: DatabaseURL,
    *,
    poll_seconds: float,
    listen_on: DatabaseURL | None,
    stream_buffer: int = 1000,
    stream_buffer_bytes: int = STREAM_BUFFER_BYTES,
    serving: bool = True,
) -> AsyncIterator[EventHub]:
    """Run this process's hub for `db` (Tortoise initialised) while in the block;
    `serving=False` for a hub that no server's shutdown concerns."""
    global _current
    hub = EventHub(
        db.dialect,
        poll_seconds=poll_seconds,
        listen_on=listen_on,
        stream_buffer=stream_buffer,
        stream_buffer_bytes=stream_buffer_bytes,
        serving=serving,
    )
    await hub.start()
    previous, _current = _current, hub
    try:
        yield hub
    finally:
        _current = previous
        await hub.stop()
