"""The event hub: hands each new event of the log to its call's waiters and to the
streams, holds a bounded number for a slow stream, and stops cleanly."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

from agent_runtime.events import hub as hub_module
from agent_runtime.events.hub import EventHub, Subscription
from agent_runtime.events.stream import event_stream, first_page
from agent_runtime.services import database as svc
from agent_runtime.services.events import last_event_id


def event(n: int, type_: str = "approval.created", session_id: str = "s1") -> dict:
    return {"id": n, "type": type_, "session_id": session_id, "call_id": f"c{n}"}


async def test_a_subscription_holds_only_matching_events():
    subscription = Subscription(10, ["approval.decided"], "s1")

    subscription.offer(event(1))
    subscription.offer(event(2, "approval.decided", "s2"))
    subscription.offer(event(3, "approval.decided"))

    assert [e["id"] for e in await subscription.take()] == [3]
    assert not subscription.ready.is_set()


async def test_a_subscription_beyond_its_bound_is_marked_overflowed():
    subscription = Subscription(5, None, None)

    for n in range(1, 51):
        subscription.offer(event(n))

    assert subscription.overflowed
    assert [e["id"] for e in await subscription.take()] == [1, 2, 3, 4, 5]
    subscription.offer(event(51))  # ignored from now on: the stream will close
    assert list(subscription.events) == []


async def new_hub(db, stream_buffer: int = 1000) -> EventHub:
    """A hub that is not started: the test calls `read_new` itself."""
    hub = EventHub(db.capabilities.dialect, poll_seconds=1, stream_buffer=stream_buffer)
    hub.last_id = await last_event_id(db)
    return hub


async def test_an_event_wakes_the_waiters_of_its_call_only(db):
    hub = await new_hub(db)
    for call_id in ("c1", "c2"):
        await svc.save_pending_approval(db, "s1", call_id, "tool", {})
    await hub.read_new()

    with hub.watch("c1") as c1, hub.watch("c2") as c2:
        assert hub.waiter_count == 2
        await svc.decide_approval(db, "c1", "approved")
        await hub.read_new()
        assert (c1.is_set(), c2.is_set()) == (True, False)

    assert hub.waiter_count == 0
    assert hub.last_id == await last_event_id(db)


async def stream_ids(stream, count: int) -> list[int]:
    return [int((await anext(stream)).id) for _ in range(count)]


async def test_a_slow_stream_is_closed_and_resumes_from_its_last_id_exactly_once(db):
    hub = await new_hub(db, stream_buffer=5)
    start = hub.last_id
    stream = event_stream(hub, start, await first_page(hub, start, None, None), None, None)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # it reads the log, then waits for live events
    await svc.save_pending_approval(db, "s1", "c0", "tool", {})
    await hub.read_new()
    received = [int((await first).id)]

    for n in range(1, 51):  # the client reads nothing meanwhile
        await svc.save_pending_approval(db, "s1", f"c{n}", "tool", {})
    await hub.read_new()
    received += [int(e.id) async for e in stream]  # what it held, then the end

    assert len(received) == 6
    assert hub.stream_count == 0
    resumed = event_stream(
        hub, received[-1], await first_page(hub, received[-1], None, None), None, None
    )
    received += await stream_ids(resumed, 45)
    await resumed.aclose()
    everything = [e["id"] for e in await svc.read_events(db, after=start)]
    assert received == everything and len(everything) == 51


async def test_stop_ends_the_hub_even_right_after_a_poke(monkeypatch):
    # No database: the hub's life only.
    monkeypatch.setattr(hub_module, "last_event_id", AsyncMock(return_value=0))
    hub = EventHub("none", poll_seconds=0.05)
    monkeypatch.setattr(hub, "connection", lambda: None)
    monkeypatch.setattr(hub, "read_new", AsyncMock())
    await hub.start()
    await asyncio.sleep(0.2)

    hub.poke()  # e.g. a notification arriving as the server shuts down
    stopping = asyncio.ensure_future(hub.stop())
    done, _ = await asyncio.wait({stopping}, timeout=2)

    if not done:  # a second cancellation ends the reader: leave nothing running
        for task in hub._tasks:
            task.cancel()
        await stopping
    assert done, "stop() did not return"


async def test_with_nobody_subscribed_the_hub_skips_to_the_end_of_the_log(db, monkeypatch):
    hub = await new_hub(db)
    for n in range(3):
        await svc.save_pending_approval(db, "s1", f"c{n}", "tool", {})
    read = AsyncMock(side_effect=svc.read_events)
    monkeypatch.setattr(hub_module, "read_events", read)

    await hub.read_new()

    assert hub.last_id == await last_event_id(db)
    read.assert_not_called()
    with hub.watch("c1") as changed:  # a waiter from now on is woken as ever
        await svc.decide_approval(db, "c1", "approved")
        await hub.read_new(poked=True)
        assert changed.is_set()
    read.assert_called()


async def test_a_waiter_arriving_while_the_hub_skips_ahead_gets_its_event(db, monkeypatch):
    hub = await new_hub(db)
    await svc.save_pending_approval(db, "s1", "c1", "tool", {})
    await hub.read_new()
    arrived: list[asyncio.Event] = []
    watching = hub.watch("c1")

    async def newest_while_a_waiter_arrives(connection):
        # The waiter enters and its decision commits while the hub reads the newest id.
        arrived.append(watching.__enter__())
        await svc.decide_approval(db, "c1", "approved")
        return await last_event_id(connection)

    monkeypatch.setattr(hub_module, "last_event_id", newest_while_a_waiter_arrives)
    try:
        await hub.read_new()
        assert arrived[0].is_set()
    finally:
        watching.__exit__(None, None, None)
