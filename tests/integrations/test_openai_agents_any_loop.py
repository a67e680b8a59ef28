"""`AgentRuntimeSession` from any event loop, and writes whose answer is lost.

- In-process, a session is bound to the event loop that owns the database
  connection: from any other, each method raises the loop rule's `RuntimeError` at
  once, before Tortoise is touched (its connection stays the owner's).
- Over REST, the client keeps one connection pool per event loop; a client given a
  `transport` (or an `http_client`) serves the loop of its first request only.
- Over REST, `add_items` is a conditional append marked with the write's id: an
  answer lost after the server committed (a timeout, a dropped connection, a 503
  from a proxy) is sent again and recognised, never written twice; `pop_item`
  likewise pops once. The failures are injected by a transport that forwards each
  request to the app, receives the answer (the write is committed), then drops it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import pytest

pytest.importorskip("agents")

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.integrations.openai_agents import (
    LOOP_RULE,
    WRITE_KEY,
    AgentRuntimeSession,
    load_run_state,
)
from agent_runtime.services import database
from tests.fixtures.backends import Backend
from tests.fixtures.remote import app_client
from tests.fixtures.servers import LiveServer
from tests.integrations.conftest import AT_ONCE_SECONDS, LOOP_RULE_MATCH, user

T = TypeVar("T")


def in_thread(work: Callable[[], Any]) -> Any:
    """`work()` run by `asyncio.run` in a new thread (its own event loop): its result or
    the exception it raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(asyncio.run(work()))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "hung"
    return out[0]


class OtherLoop:
    """Runs coroutines on an event loop running in another thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def __call__(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))


@contextmanager
def running_loop_in_a_thread() -> Iterator[OtherLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield OtherLoop(loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# --- in-process: the loop rule --------------------------------------------------------


SESSION_CALLS = {
    "get_items": lambda s: s.get_items(),
    "get_items(limit=0)": lambda s: s.get_items(limit=0),
    "add_items": lambda s: s.add_items([user("from another loop")]),
    "add_items([])": lambda s: s.add_items([]),
    "pop_item": lambda s: s.pop_item(),
    "clear_session": lambda s: s.clear_session(),
    "load_run_state": lambda s: load_run_state(s),
}


@pytest.mark.parametrize("call", list(SESSION_CALLS))
async def test_in_process_another_loop_is_refused_at_once(store: Backend, call: str):
    session = AgentRuntimeSession("owned")
    await session.add_items([user("from the owner")])
    connection = database.get_connection()

    started = time.monotonic()
    error = in_thread(lambda: SESSION_CALLS[call](session))
    assert time.monotonic() - started < AT_ONCE_SECONDS

    assert isinstance(error, RuntimeError)
    assert str(error) == LOOP_RULE
    assert LOOP_RULE_MATCH in LOOP_RULE
    # Tortoise was not asked: the owner's connection is the same, and works.
    assert database.get_connection() is connection
    assert await session.get_items() == [user("from the owner")]
    await session.add_items([user("again")])
    assert len(await session.get_items()) == 2


async def test_in_process_a_new_session_object_in_the_thread_is_refused_too(store: Backend):
    error = in_thread(lambda: AgentRuntimeSession("made-there").add_items([user("x")]))
    assert isinstance(error, RuntimeError)
    assert str(error) == LOOP_RULE
    assert await database.get_session(database.get_connection(), "made-there") is None


async def test_in_process_the_owner_is_the_first_loop_to_use_the_connection(backend: Backend):
    """`init_database` (and `init_db`) do not open the connection: the first loop to use
    it owns it. Here another thread's loop does; this loop is then refused."""
    await database.init_database(backend.url)
    with running_loop_in_a_thread() as on_other:
        try:
            assert await on_other(AgentRuntimeSession("first").get_items()) == []
            with pytest.raises(RuntimeError, match=LOOP_RULE_MATCH):
                await AgentRuntimeSession("first").get_items()
        finally:
            await on_other(database.close_db())  # on the loop that owns the connection


# --- over REST: any loop ----------------------------------------------------------


async def test_one_client_serves_many_loops_and_threads(server: LiveServer, store: Backend):
    async with AsyncAgentRuntimeClient(server.url) as client:
        session = AgentRuntimeSession("many-loops", client=client)
        await session.add_items([user("from the test's loop")])
        for i in range(3):  # one after the other: each loop ends before the next
            assert in_thread(lambda i=i: session.add_items([user(f"sequential {i}")])) is None
        errors = await asyncio.gather(
            *(
                asyncio.to_thread(in_thread, lambda i=i: session.add_items([user(f"thread {i}")]))
                for i in range(4)
            )
        )
        assert errors == [None] * 4

        items = [item["content"] for item in await session.get_items()]
        assert items[:4] == ["from the test's loop", *(f"sequential {i}" for i in range(3))]
        assert sorted(items[4:]) == [f"thread {i}" for i in range(4)]
        # The pools of the loops that ended were dropped: this loop's, at most one other.
        assert len(client._http._clients) <= 2


async def test_a_client_given_a_transport_serves_the_loop_of_its_first_request(
    backend: Backend,
):
    async with app_client(backend) as (_, _, app):
        sent: list[str] = []

        async def counting(request: httpx.Request) -> httpx.Response:
            sent.append(request.url.path)
            return await asgi.handle_async_request(request)

        asgi = httpx.ASGITransport(app=app)
        transport = httpx.MockTransport(counting)
        async with AsyncAgentRuntimeClient("http://test", transport=transport) as client:
            session = AgentRuntimeSession("bound", client=client)
            await session.add_items([user("here")])
            count = len(sent)

            error = in_thread(lambda: session.get_items())
            assert isinstance(error, RuntimeError)
            assert "event loop of its first request" in str(error)
            assert len(sent) == count  # refused before sending
            assert await session.get_items() == [user("here")]


async def test_closing_the_client_closes_the_pools_of_loops_still_running(
    server: LiveServer, store: Backend
):
    client = AsyncAgentRuntimeClient(server.url)
    with running_loop_in_a_thread() as on_other:
        await on_other(AgentRuntimeSession("pools", client=client).add_items([user("x")]))
        [other] = [c for loop, c in client._http._clients.items() if loop is on_other.loop]
        await client.aclose()
        for _ in range(100):
            if other.is_closed:
                break
            await asyncio.sleep(0.01)
        assert other.is_closed


# --- over REST: lost answers --------------------------------------------------------


def is_write(request: httpx.Request) -> bool:
    """A POST that writes messages (a save or an append), not the empty create."""
    return (
        request.method == "POST"
        and request.url.path.startswith("/sessions/")
        and (request.content not in (b"[]", b""))
    )


class LoseAnswers(httpx.AsyncBaseTransport):
    """Forwards every request to `inner`. For those `lose(request, n)` picks (`n`: the
    how-manieth write it is, from 1), the server's answer is received (the write is
    committed) and then dropped: `lose` returns the exception to raise or the
    response to give instead; `before=True` drops the request before sending it."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        lose: Callable[[httpx.Request, int], BaseException | httpx.Response | None],
        *,
        before: bool = False,
    ) -> None:
        self.inner, self.lose, self.before = inner, lose, before
        self.writes: list[tuple[int, int | None]] = []  # (n, status answered by the server)
        self.after_commit: Callable[[], Any] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not is_write(request):
            return await self.inner.handle_async_request(request)
        n = len(self.writes) + 1
        outcome = self.lose(request, n)
        if self.before and isinstance(outcome, BaseException):
            self.writes.append((n, None))
            raise outcome
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.writes.append((n, response.status_code))
        if outcome is None:
            return response
        if self.after_commit is not None:
            await self.after_commit()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def aclose(self) -> None:
        await self.inner.aclose()


def timeout(request: httpx.Request) -> BaseException:
    return httpx.ReadTimeout("the answer was lost", request=request)


@asynccontextmanager
async def lossy(
    backend: Backend, lose: Callable[[httpx.Request, int], Any], **kwargs: Any
) -> AsyncIterator[tuple[AgentRuntimeSession, LoseAnswers, AsyncAgentRuntimeClient]]:
    """A session over REST through `LoseAnswers` to the app; and a plain client."""
    async with app_client(backend) as (plain, _, app):
        transport = LoseAnswers(httpx.ASGITransport(app=app), lose, **kwargs)
        async with AsyncAgentRuntimeClient("http://test", transport=transport, backoff=0) as c:
            yield AgentRuntimeSession("lossy", client=c), transport, plain


async def test_an_append_whose_answer_is_lost_is_stored_once(backend: Backend):
    async with lossy(backend, lambda r, n: timeout(r) if n == 1 else None) as (session, t, _):
        await session.add_items([user("hello"), user("world")])

        assert await session.get_items() == [user("hello"), user("world")]
        assert t.writes == [(1, 200), (2, 412)]  # committed, lost; the resend refused


async def test_an_append_lost_before_reaching_the_server_is_sent_again(backend: Backend):
    lose = lambda r, n: httpx.ConnectError("refused", request=r) if n == 1 else None  # noqa: E731
    async with lossy(backend, lose, before=True) as (session, t, _):
        await session.add_items([user("hello")])

        assert await session.get_items() == [user("hello")]
        assert t.writes == [(1, None), (2, 200)]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda r: httpx.ReadError("connection reset", request=r), id="reset"),
        pytest.param(
            lambda r: httpx.Response(503, json={"error": {"code": "unavailable"}}),
            id="503-from-a-proxy",
        ),
    ],
)
async def test_other_lost_answers_too(backend: Backend, answer: Callable[[Any], Any]):
    async with lossy(backend, lambda r, n: answer(r) if n == 1 else None) as (session, _, _):
        await session.add_items([user("once")])
        assert await session.get_items() == [user("once")]


async def test_a_lost_append_is_found_after_another_writer_appended(backend: Backend):
    async with lossy(backend, lambda r, n: timeout(r) if n == 2 else None) as (s, t, plain):
        await s.add_items([user("first")])
        # After our second write commits and before its answer is lost, another appends.
        t.after_commit = lambda: plain.append_messages("lossy", [user("other")])
        await s.add_items([user("second")])

        assert [i["content"] for i in await s.get_items()] == ["first", "second", "other"]


async def test_an_append_lost_on_every_attempt_raises_and_its_retry_stores_it_once(
    backend: Backend,
):
    lose_all = True
    lose = lambda r, n: timeout(r) if lose_all else None  # noqa: E731
    async with lossy(backend, lose) as (session, t, _):
        with pytest.raises(httpx.ReadTimeout):
            await session.add_items([user("hello")])
        assert len(t.writes) == 3  # max_attempts: the first committed, then refused twice

        lose_all = False
        await session.add_items([user("hello")])  # the caller's retry resumes that write
        assert await session.get_items() == [user("hello")]

        # A new add_items (other items, or the same ones again) is a new write.
        await session.add_items([user("hello")])
        assert await session.get_items() == [user("hello"), user("hello")]


def write_id(request: httpx.Request) -> str | None:
    body = json.loads(request.content)
    return body[0].get("metadata", {}).get(WRITE_KEY) if body else None


async def test_concurrent_appends_with_lost_answers_store_each_item_once(backend: Backend):
    seen: set[str | None] = set()

    def lose(request: httpx.Request, n: int) -> BaseException | None:
        """The answer to the first attempt of each write (a 200 or a 412) is lost."""
        first = (key := write_id(request)) not in seen
        seen.add(key)
        return timeout(request) if first else None

    async with lossy(backend, lose) as (session, t, _):
        writers = [AgentRuntimeSession("lossy", client=session.client) for _ in range(8)]
        await asyncio.gather(
            *(w.add_items([user(f"w{i} a"), user(f"w{i} b")]) for i, w in enumerate(writers))
        )

        items = [i["content"] for i in await session.get_items()]
        assert sorted(items) == sorted(f"w{i} {x}" for i in range(8) for x in "ab")
        for i in range(8):  # each batch stays together, in order
            assert items[items.index(f"w{i} a") + 1] == f"w{i} b"
        assert len(seen) == 8
        assert [status for _, status in t.writes].count(200) == 8  # each committed once


async def test_a_pop_whose_answer_is_lost_pops_once(backend: Backend):
    async with lossy(backend, lambda r, n: timeout(r) if n == 2 else None) as (session, t, _):
        await session.add_items([user("a"), user("b"), user("c")])

        assert await session.pop_item() == user("c")
        assert await session.get_items() == [user("a"), user("b")]
        assert t.writes == [(1, 200), (2, 200), (3, 412)]


async def test_a_lost_pop_is_recognised_after_another_writer_appended(backend: Backend):
    async with lossy(backend, lambda r, n: timeout(r) if n == 2 else None) as (s, t, plain):
        await s.add_items([user("a"), user("b"), user("c")])
        t.after_commit = lambda: plain.append_messages("lossy", [user("d")])

        assert await s.pop_item() == user("c")
        assert await s.get_items() == [user("a"), user("b"), user("d")]


async def test_a_pop_refused_after_a_lost_answer_that_did_not_write_pops_again(
    backend: Backend,
):
    """The lost attempt never reached the server, and another writer appended
    meanwhile: the resend is refused (412) with the item still there, so the pop reads
    again and pops the latest item."""
    lose = lambda r, n: httpx.ConnectError("refused", request=r) if n == 2 else None  # noqa: E731
    async with lossy(backend, lose, before=True) as (s, t, plain):
        await s.add_items([user("a"), user("b")])
        forward = t.handle_async_request

        async def another_writer_first(request: httpx.Request) -> httpx.Response:
            if is_write(request) and len(t.writes) == 1:  # the pop's first attempt
                await plain.append_messages("lossy", [user("c")])
            return await forward(request)

        t.handle_async_request = another_writer_first  # type: ignore[method-assign]
        assert await s.pop_item() == user("c")
        assert await s.get_items() == [user("a"), user("b")]
        assert [status for _, status in t.writes] == [200, None, 412, 200]


async def test_the_write_id_marks_the_first_message_of_each_append(backend: Backend):
    async with lossy(backend, lambda r, n: None) as (session, _, plain):
        await session.add_items([user("a"), user("b")])
        await session.add_items([user("c")])
        page = await plain.list_messages("lossy")
        marks = [(m.metadata or {}).get(WRITE_KEY) for m in page.items]
        assert marks[0] and marks[2] and marks[0] != marks[2]
        assert marks[1] is None


async def test_an_append_whose_answer_is_lost_over_http_is_stored_once(
    server: LiveServer, store: Backend
):
    """The same against a real server: the answer is lost after it was received."""
    transport = LoseAnswers(httpx.AsyncHTTPTransport(), lambda r, n: timeout(r) if n == 1 else None)
    async with AsyncAgentRuntimeClient(server.url, transport=transport, backoff=0) as client:
        session = AgentRuntimeSession("lossy-http", client=client)
        await session.add_items([user("hello")])
        assert await session.get_items() == [user("hello")]
        assert transport.writes == [(1, 200), (2, 412)]
