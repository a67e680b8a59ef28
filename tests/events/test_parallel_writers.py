"""PostgreSQL: writers on different sessions never wait for each other, and the event
log still gives every reader each committed event once, in log order: when a later
writer commits first, when a transaction stays open, when one rolls back, and with
many writers at once (a live reader against a replay of the log)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from agent_runtime.events.hub import EventHub, running_hub
from agent_runtime.services import database as svc
from agent_runtime.services._common import atomic
from agent_runtime.services.events import last_event_id, read_events
from tests.fixtures.servers import start_uvicorn

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

MESSAGE = {"role": "user", "content": "hi"}
FINISHED = 10.0  # seconds a write may take before the test calls it stuck


@pytest.fixture
async def hub(db, backend) -> AsyncIterator[EventHub]:
    """A listening hub, as a server runs one (it moves committed events into the log)."""
    async with running_hub(
        backend.database, poll_seconds=0.1, listen_on=backend.database
    ) as running:
        yield running


async def live_reader(
    hub: EventHub, after: int, work: Callable[[], Awaitable[Any]]
) -> list[dict[str, Any]]:
    """The events after `after` a live subscription received while `work` ran, and
    until the log had nothing more for it (as a stream resuming at `after` does)."""
    received: list[dict[str, Any]] = []
    with hub.subscribe() as subscription:
        await work()
        deadline = asyncio.get_running_loop().time() + FINISHED
        while True:
            hub.poke()
            try:
                async with asyncio.timeout(0.5):
                    received += [e for e in await subscription.take() if e["id"] > after]
            except TimeoutError:
                if await svc_pending_count(hub) == 0:
                    break
            assert asyncio.get_running_loop().time() < deadline
    return received


async def svc_pending_count(hub: EventHub) -> int:
    rows = await hub.connection().execute_query_dict("SELECT count(*) AS n FROM pending_events")
    return int(rows[0]["n"])


def ids_of(events: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in events]


async def replay(db: BaseDBAsyncClient, after: int) -> list[dict[str, Any]]:
    return await read_events(db, after=after, limit=10_000)


async def test_a_later_writer_committing_first_is_read_once_each_in_log_order(db, hub):
    start = await last_event_id(db)
    connection = Tortoise.get_connection("postgres")

    async def work() -> None:
        first_open, second_done = asyncio.Event(), asyncio.Event()

        async def first() -> None:  # writes first, commits last
            async with atomic(connection) as tx:
                await svc.save_pending_approval(tx, "s1", "c1", "tool", {})
                first_open.set()
                await second_done.wait()
                # The second call's event is in the log (it has its id) before this
                # transaction, which drew its pending id first, commits.
                async with asyncio.timeout(FINISHED):
                    while not await read_events(db, after=start, session_id="s2"):  # noqa: ASYNC110
                        await asyncio.sleep(0.01)

        async def second() -> None:
            await first_open.wait()
            await svc.save_pending_approval(connection, "s2", "c2", "tool", {})
            second_done.set()

        await asyncio.gather(first(), second())

    received = await live_reader(hub, start, work)

    logged = await replay(db, start)
    assert ids_of(received) == ids_of(logged)
    assert ids_of(logged) == sorted(set(ids_of(logged)))
    # Log order is commit order: the call that committed first has the lower id.
    assert [e["call_id"] for e in logged] == ["c2", "c1"]


async def test_writes_on_other_sessions_finish_while_a_transaction_stays_open(db, hub):
    """The open transaction holds nothing the others need: each of them commits, and
    its event reaches a live reader, before the open one ends; the open one's event
    comes after, once."""
    await svc.save_session(db, "b", [MESSAGE], datetime.now(UTC))
    await svc.save_session(db, "c", [MESSAGE], datetime.now(UTC))
    await svc.save_pending_approval(db, "e", "decide-me", "tool", {})
    start = await last_event_id(db)
    connection = Tortoise.get_connection("postgres")
    opened, others_done = asyncio.Event(), asyncio.Event()
    finished_while_open: list[str] = []

    async def held_open() -> None:
        async with atomic(connection) as tx:
            await svc.save_session(tx, "a", [MESSAGE], datetime.now(UTC))
            opened.set()
            await others_done.wait()
            await asyncio.sleep(0.3)  # the reader has had time to see the others

    async def others() -> None:
        await opened.wait()
        now = datetime.now(UTC)
        writes = {
            "save b": svc.save_session(connection, "b", [MESSAGE, MESSAGE], now),
            "append c": svc.append_messages(connection, "c", [MESSAGE], now),
            "approval d": svc.save_pending_approval(connection, "d", "call-d", "tool", {}),
            "decision e": svc.decide_approval(connection, "decide-me", "approved"),
        }
        for name, write in writes.items():
            async with asyncio.timeout(FINISHED):
                await write
            finished_while_open.append(name)
        others_done.set()

    async def work() -> None:
        await asyncio.gather(held_open(), others())

    received = await live_reader(hub, start, work)

    assert finished_while_open == ["save b", "append c", "approval d", "decision e"]
    logged = await replay(db, start)
    assert ids_of(received) == ids_of(logged) == sorted(set(ids_of(logged)))
    assert [e["session_id"] for e in logged] == ["b", "c", "d", "e", "a"]


async def test_a_rolled_back_write_is_never_read_and_the_next_one_is(db, hub):
    start = await last_event_id(db)
    connection = Tortoise.get_connection("postgres")

    async def work() -> None:
        with pytest.raises(RuntimeError):
            async with atomic(connection) as tx:
                await svc.save_pending_approval(tx, "s1", "gone", "tool", {})
                raise RuntimeError("the caller fails")
        await svc.save_pending_approval(connection, "s1", "kept", "tool", {})

    received = await live_reader(hub, start, work)

    assert [e["call_id"] for e in received] == ["kept"]
    assert ids_of(await replay(db, start)) == ids_of(received)
    assert await svc_pending_count(hub) == 0


async def test_many_writers_at_once_a_live_reader_gets_exactly_the_replayed_log(db, hub):
    start = await last_event_id(db)
    connection = Tortoise.get_connection("postgres")
    writers, rounds = 24, 12

    async def writer(n: int) -> None:
        for r in range(rounds):
            now = datetime.now(UTC)
            if r % 3 == 2:
                await svc.save_pending_approval(connection, f"w{n}", f"w{n}-{r}", "tool", {})
            else:
                await svc.append_messages(connection, f"w{n}", [MESSAGE], now)

    async def work() -> None:
        await asyncio.gather(*(writer(n) for n in range(writers)))

    received = await live_reader(hub, start, work)

    logged = await replay(db, start)
    assert len(logged) == writers * rounds
    assert ids_of(received) == ids_of(logged)
    assert len(set(ids_of(received))) == len(received)


async def test_reading_the_log_inside_a_transaction_holds_nothing_others_need(db, hub):
    """A reader moves pending events on a connection of its own: a caller's open
    transaction that read the log does not keep the log's lock from the others."""
    connection = Tortoise.get_connection("postgres")
    await svc.save_pending_approval(connection, "s1", "c1", "tool", {})
    async with atomic(connection) as tx:
        await svc.save_pending_approval(tx, "s2", "c2", "tool", {})
        await read_events(tx, after=0)  # moves c1, under the lock, outside `tx`
        async with asyncio.timeout(FINISHED):
            await svc.save_pending_approval(connection, "s3", "c3", "tool", {})
            logged = [e["call_id"] for e in await read_events(connection, after=0)]
        assert logged == ["c1", "c3"]  # c2 is not committed yet
    assert [e["call_id"] for e in await read_events(connection, after=0)] == ["c1", "c3", "c2"]


async def test_live_rest_writes_on_other_sessions_finish_while_a_transaction_stays_open(
    db, backend, tmp_path
):
    """Over REST, on two instances of two workers each: while a transaction of an
    application embedding the service holds session A, saves, appends, approvals and
    decisions on other sessions answer."""
    for n in range(2):
        (tmp_path / f"i{n}").mkdir()
    servers = [start_uvicorn(backend, tmp_path / f"i{n}", workers=2) for n in range(2)]
    try:
        async with in_transaction("postgres") as tx:
            await svc.save_session(tx, "a", [MESSAGE], datetime.now(UTC))
            async with httpx.AsyncClient(timeout=FINISHED) as client:
                for n, server in enumerate(servers * 2):
                    url, s = server.url, f"rest-{n}"
                    saved = await client.post(f"{url}/sessions/{s}", json=[MESSAGE])
                    appended = await client.post(f"{url}/sessions/{s}/messages", json=[MESSAGE])
                    approval = {"session_id": s, "call_id": f"{s}-c", "tool_name": "t"}
                    created = await client.post(f"{url}/approvals", json=approval)
                    decided = await client.post(
                        f"{url}/approvals/{s}-c/decision", json={"status": "approved"}
                    )
                    statuses = [r.status_code for r in (saved, appended, created, decided)]
                    assert statuses == [200, 200, 201, 200], (url, statuses)
            # Still open: none of the above waited for it.
            assert not tx._finalized
    finally:
        for server in servers:
            server.stop()
