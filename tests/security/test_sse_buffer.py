"""A slow event-stream reader holds a bounded number of bytes, not only of events:
past `AGENT_RUNTIME__SSE_BUFFER_BYTES` of events held for it, its stream is closed,
and its client resumes from its last id (read from the log), missing nothing."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from asgi_lifespan import LifespanManager

from agent_runtime.config import Settings
from agent_runtime.events.hub import EventHub, Subscription, event_size
from agent_runtime.events.stream import event_stream, first_page
from agent_runtime.main import create_app
from agent_runtime.services import database as svc
from agent_runtime.services.events import last_event_id

KIB = 1024
BLOB = "x" * (100 * KIB)  # approval arguments of ~100 KiB: each event is that large


def event(n: int, size: int = 0) -> dict[str, Any]:
    return {"id": n, "type": "approval.created", "session_id": "s1", "data": {"b": "x" * size}}


# --- the subscription -------------------------------------------------------------------


async def test_events_beyond_the_byte_budget_overflow_the_subscription():
    subscription = Subscription(1000, None, None, max_bytes=64 * KIB)

    subscription.offer(event(1, 40 * KIB))
    subscription.offer(event(2, 40 * KIB))  # 80 KiB held would be over the budget
    subscription.offer(event(3, 1))  # ignored: the stream is closing

    assert subscription.overflowed
    assert [e["id"] for e in await subscription.take()] == [1]
    assert not subscription.events  # drained: the stream ends


async def test_the_batch_being_sent_counts_until_the_next_take():
    subscription = Subscription(1000, None, None, max_bytes=64 * KIB)
    subscription.offer(event(1, 40 * KIB))
    assert [e["id"] for e in await subscription.take()] == [1]  # being sent

    subscription.offer(event(2, 40 * KIB))  # the client has not read event 1 yet

    assert subscription.overflowed and not subscription.events
    assert subscription.held_bytes == event_size(event(1, 40 * KIB))


async def test_a_reader_that_keeps_up_is_never_closed_even_by_events_over_the_budget():
    subscription = Subscription(1000, None, None, max_bytes=64 * KIB)
    received = []

    async def reader() -> None:
        while batch := await subscription.take():
            received.extend(e["id"] for e in batch)

    task = asyncio.ensure_future(reader())
    for n in range(1, 21):
        subscription.offer(event(n, 100 * KIB))  # each alone over the budget
        await asyncio.sleep(0)  # the reader takes it
        await asyncio.sleep(0)
    assert not subscription.overflowed
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task

    assert received == list(range(1, 21))


async def test_the_event_count_bound_still_holds():
    subscription = Subscription(5, None, None, max_bytes=64 * KIB)

    for n in range(1, 51):
        subscription.offer(event(n))

    assert subscription.overflowed
    assert [e["id"] for e in await subscription.take()] == [1, 2, 3, 4, 5]


# --- a slow stream, on the database -----------------------------------------------------


async def new_hub(db, budget: int, streams: int = 1) -> EventHub:
    """A hub that is not started: the test calls `read_new` itself."""
    hub = EventHub(
        db.capabilities.dialect, poll_seconds=1, stream_buffer=1000, stream_buffer_bytes=budget
    )
    hub.last_id = await last_event_id(db)
    return hub


async def test_a_slow_reader_is_closed_past_its_bytes_and_resumes_exactly_once(db):
    budget = 256 * KIB
    hub = await new_hub(db, budget)
    start = hub.last_id
    stream = event_stream(hub, start, await first_page(hub, start, None, None), None, None)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # it reads the log, then waits for live events
    await svc.save_pending_approval(db, "s1", "c0", "tool", {"blob": BLOB})
    await hub.read_new()
    received = [int((await first).id)]

    for n in range(1, 41):  # 4 MB of events; the client reads nothing meanwhile
        await svc.save_pending_approval(db, "s1", f"c{n}", "tool", {"blob": BLOB})
    await hub.read_new()

    (subscription,) = hub._streams
    held = sum(event_size(e) for e in subscription.events)
    assert subscription.overflowed
    assert subscription.held_bytes <= budget + event_size(subscription.events[-1])
    assert held <= subscription.held_bytes and len(subscription.events) <= 3
    received += [int(e.id) async for e in stream]  # what it held, then the end
    assert hub.stream_count == 0 and len(received) <= 4

    resumed = event_stream(
        hub, received[-1], await first_page(hub, received[-1], None, None), None, None
    )
    everything = [e["id"] for e in await svc.read_events(db, after=start, limit=100)]
    received += [int((await anext(resumed)).id) for _ in range(len(everything) - len(received))]
    await resumed.aclose()
    assert received == everything and len(everything) == 41


async def test_many_slow_readers_each_hold_at_most_their_budget(db):
    budget = 128 * KIB
    hub = await new_hub(db, budget)
    contexts = [hub.subscribe() for _ in range(20)]
    subscriptions = [context.__enter__() for context in contexts]
    try:
        for n in range(30):  # 3 MB of events, read by no one
            await svc.save_pending_approval(db, "s1", f"c{n}", "tool", {"blob": BLOB})
        await hub.read_new()

        for subscription in subscriptions:
            assert subscription.overflowed
            held = sum(event_size(e) for e in subscription.events)
            assert held == subscription.held_bytes <= budget + event_size(subscription.events[0])
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
    assert hub.stream_count == 0


# --- the setting ------------------------------------------------------------------------


async def test_the_setting_bounds_every_stream_of_the_app(backend):
    settings = Settings(**backend.settings, sse_buffer_bytes=200_000, sse_buffer_events=7)
    app = create_app(settings)

    async with LifespanManager(app):
        hub = app.state.hub
        with hub.subscribe() as subscription:
            assert (subscription.max_bytes, subscription.maxsize) == (200_000, 7)
