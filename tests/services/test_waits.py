"""Waiting for a person's decision: woken by the event hub, never by polling the row."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sse_starlette.sse import AppStatus

from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.events.hub import current_hub, running_hub
from agent_runtime.events.listener import SELF_TEST_SECONDS
from agent_runtime.events.waits import wait_for_decision
from agent_runtime.services import database
from agent_runtime.services import database as svc

WAIT = 10.0  # seconds a wait may take at most; every wake must come well before


@pytest.fixture
async def hub(db, backend):
    """This process's hub: LISTEN/NOTIFY on PostgreSQL (up and listening), polling on SQLite."""
    url = backend.database
    listen_on = None if url.is_sqlite else url
    async with running_hub(url, poll_seconds=0.05, listen_on=listen_on) as running:
        for _ in range(int(SELF_TEST_SECONDS * 20)):
            if running.mode == "listen" or listen_on is None:
                break
            await asyncio.sleep(0.05)
        assert running.mode == ("poll" if listen_on is None else "listen")
        yield running


async def pending(db, call_id="call_1"):
    await svc.save_pending_approval(db, "s1", call_id, "delete_file", {"path": "/tmp/a"})


def clock() -> float:
    return asyncio.get_running_loop().time()


async def test_a_decided_call_is_returned_at_once(db, hub):
    await pending(db)
    await svc.decide_approval(db, "call_1", "rejected", message="no")
    start = clock()

    approval = await wait_for_decision("call_1", WAIT, db=db, hub=hub)

    assert (approval["status"], approval["message"]) == ("rejected", "no")
    assert clock() - start < WAIT


async def test_a_decision_during_the_wait_wakes_the_waiter(db, hub):
    await pending(db)
    start = clock()
    waiting = asyncio.create_task(wait_for_decision("call_1", WAIT, hub=hub))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    await svc.decide_approval(db, "call_1", "approved", decided_by="alice")

    approval = await waiting
    assert (approval["status"], approval["decided_by"]) == ("approved", "alice")
    assert clock() - start < WAIT
    assert hub.waiter_count == 0


async def test_an_undecided_call_is_returned_pending_at_the_timeout(db, hub):
    await pending(db)
    start = clock()

    approval = await wait_for_decision("call_1", 0.3, hub=hub)

    assert approval["status"] == "pending"
    assert clock() - start >= 0.25
    assert hub.waiter_count == 0


async def test_a_closing_hub_answers_every_wait_at_once_still_pending(db, hub):
    await pending(db)
    start = clock()
    waiting = asyncio.create_task(wait_for_decision("call_1", WAIT, hub=hub))
    await asyncio.sleep(0.2)

    hub.close()  # the server shuts down

    assert (await waiting)["status"] == "pending"
    assert clock() - start < WAIT


async def test_other_calls_events_do_not_end_the_wait(db, hub):
    await pending(db, "call_1")
    await pending(db, "call_2")
    waiting = asyncio.create_task(wait_for_decision("call_1", 0.5, hub=hub))
    await asyncio.sleep(0.1)

    await svc.decide_approval(db, "call_2", "approved")

    assert (await waiting)["status"] == "pending"


async def test_an_unknown_call_is_not_found(db, hub):
    with pytest.raises(NotFoundError):
        await wait_for_decision("nope", 1, hub=hub)
    assert hub.waiter_count == 0


@pytest.mark.parametrize("seconds", [0, -1, 0.0, float("nan"), "1", None, True])
async def test_a_timeout_that_is_not_positive_is_refused(db, hub, seconds):
    await pending(db)

    with pytest.raises(InvalidInputError, match="timeout"):
        await wait_for_decision("call_1", seconds, hub=hub)


async def test_no_wake_up_is_lost_when_the_decision_follows_the_wait_at_once(db, hub):
    for i in range(40):
        call_id = f"call_{i}"
        await pending(db, call_id)
        start = clock()
        waiting = asyncio.create_task(wait_for_decision(call_id, 5, hub=hub))
        for _ in range(i % 4):  # the decision lands at each step of the waiter's start
            await asyncio.sleep(0)

        await svc.decide_approval(db, call_id, "approved")

        assert (await waiting)["status"] == "approved", call_id
        assert clock() - start < 5, call_id


async def test_many_waiters_each_wake_on_their_own_decision(db, hub):
    calls = [f"call_{i}" for i in range(200)]
    for call_id in calls:
        await pending(db, call_id)
    start = clock()
    waiting = [asyncio.create_task(wait_for_decision(c, WAIT * 3, hub=hub)) for c in calls]
    await asyncio.sleep(0.3)
    assert hub.waiter_count == len(calls)

    for i, call_id in enumerate(reversed(calls)):
        await svc.decide_approval(db, call_id, "approved" if i % 2 else "rejected")

    results = await asyncio.gather(*waiting)
    assert clock() - start < WAIT * 3
    assert [r["call_id"] for r in results] == calls
    stored = {c: (await svc.get_approval(db, c))["status"] for c in calls}
    assert {r["call_id"]: r["status"] for r in results} == stored
    assert hub.waiter_count == 0


def hub_tasks() -> list[asyncio.Task]:
    names = {"event-hub", "event-hub-exit", "event-listener"}
    return [t for t in asyncio.all_tasks() if t.get_name() in names and not t.done()]


async def test_the_service_api_starts_a_hub_on_the_first_wait_and_close_db_stops_it(backend):
    call_id = f"call-{uuid.uuid4()}"
    await database.init_database(backend.url)
    try:
        conn = database.get_connection()
        await svc.save_pending_approval(conn, "s1", call_id, "delete_file", {})
        assert current_hub() is None
        start = clock()

        waiting = asyncio.create_task(database.wait_for_decision(call_id, WAIT))
        await asyncio.sleep(0.3)
        assert current_hub() is not None and hub_tasks()
        await svc.decide_approval(conn, call_id, "approved")

        assert (await waiting)["status"] == "approved"
        assert clock() - start < WAIT
        assert (await database.wait_for_decision(call_id, 1))["status"] == "approved"
    finally:
        await database.close_db()

    assert current_hub() is None
    assert hub_tasks() == []


async def test_the_service_api_wait_ignores_a_server_shutdown_elsewhere_in_the_process(
    backend, monkeypatch
):
    # sse-starlette's shutdown flag is process-wide and stays set once any uvicorn
    # in the process began to stop: only a server's own hub may answer early on it.
    monkeypatch.setattr(AppStatus, "should_exit", True)
    call_id = f"call-{uuid.uuid4()}"
    await database.init_database(backend.url)
    try:
        conn = database.get_connection()
        await svc.save_pending_approval(conn, "s1", call_id, "delete_file", {})
        waiting = asyncio.create_task(database.wait_for_decision(call_id, WAIT))
        await asyncio.sleep(1.0)  # twice the hub's shutdown check
        assert not waiting.done()

        await svc.decide_approval(conn, call_id, "approved")

        assert (await waiting)["status"] == "approved"
    finally:
        await database.close_db()


async def test_concurrent_first_waits_share_one_hub_and_all_wait_for_the_decision(backend):
    call_id = f"call-{uuid.uuid4()}"
    await database.init_database(backend.url)
    try:
        conn = database.get_connection()
        await svc.save_pending_approval(conn, "s1", call_id, "delete_file", {})
        waiting = [asyncio.create_task(database.wait_for_decision(call_id, WAIT)) for _ in range(3)]
        await asyncio.sleep(0.5)
        assert not any(w.done() for w in waiting)

        await svc.decide_approval(conn, call_id, "approved")

        assert [a["status"] for a in await asyncio.gather(*waiting)] == ["approved"] * 3
        assert len([t for t in hub_tasks() if t.get_name() == "event-hub"]) == 1
    finally:
        await database.close_db()
