"""The OpenAI Agents SDK's session tests that use one session from several event
loops, ported to `AgentRuntimeSession`: `Runner.run_sync` from a fresh loop in a
worker thread each time, and threads each running their own loop.

Sources (openai/openai-agents-python): tests/memory/test_session.py (the `run_sync`
cases of its runner-parametrised tests, and `test_sqlite_session_concurrent_access`),
tests/memory/test_session_limit.py (the `run_sync` cases), and
tests/extensions/memory/test_sqlalchemy_session.py (the two cross-loop tests). Each
keeps its source's name, steps and assertions (`run` and `run_streamed` cases of
the same tests are in test_openai_agents_sdk_ported.py); the SDK's `FakeModel` /
`ScriptedModel` is `agents.testing.ScriptedModel` (no network).

Each runs twice, on SQLite and PostgreSQL:

- over REST (`TestOverRest`), to a real uvicorn server, through one
  `AsyncAgentRuntimeClient` shared by every loop: each must pass as in the SDK;
- in-process (`TestInProcess`), where a session is bound to the event loop that owns
  the database connection: the first call from another loop must raise the loop
  rule's `RuntimeError` at once (no hang, even while the owning loop is blocked
  waiting for the threads), leaving the connection as it was (`AnyLoop.elsewhere`).

Not ported: `test_session_memory_disabled_parametrized` (no session).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

pytest.importorskip("agents")

from agents import Agent, RunConfig, Runner, TResponseInputItem
from agents.memory import SessionSettings
from agents.testing import ScriptedModel, assistant_message

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.integrations.openai_agents import AgentRuntimeSession
from tests.fixtures.backends import Backend
from tests.fixtures.servers import LiveServer
from tests.integrations.conftest import AnyLoop, held_or_passed, scripted_agent

get_text_message = assistant_message


# The SDK's helpers (tests/memory/test_session.py), for the run_sync case.
def _run_sync_wrapper(agent, input_data, **kwargs):
    """Wrapper for run_sync that properly sets up an event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, input_data, **kwargs)
    finally:
        loop.close()


async def run_agent_async(sessions: AnyLoop, agent, input_data, **kwargs):
    """`run_agent_async("run_sync", ...)`: run_sync in a thread with its own event loop."""
    return await sessions.elsewhere(
        asyncio.to_thread(_run_sync_wrapper, agent, input_data, **kwargs)
    )


class SDKSessionThreadTests:
    """The ported tests; the two subclasses give `sessions` (in-process, over REST)."""

    # -- tests/memory/test_session.py ------------------------------------------

    @held_or_passed
    async def test_session_memory_basic_functionality_parametrized(self, sessions: AnyLoop):
        session = sessions("test_session_123")
        agent, model = scripted_agent()

        model.enqueue([get_text_message("San Francisco")])
        result1 = await run_agent_async(
            sessions, agent, "What city is the Golden Gate Bridge in?", session=session
        )
        assert result1.final_output == "San Francisco"

        model.enqueue([get_text_message("California")])
        result2 = await run_agent_async(sessions, agent, "What state is it in?", session=session)
        assert result2.final_output == "California"

        last_input = model.calls[-1].input
        assert len(last_input) > 1

    @held_or_passed
    async def test_session_memory_with_explicit_instance_parametrized(self, sessions: AnyLoop):
        session = sessions("test_session_456")
        agent, model = scripted_agent()

        model.enqueue([get_text_message("Hello")])
        result1 = await run_agent_async(sessions, agent, "Hi there", session=session)
        assert result1.final_output == "Hello"

        model.enqueue([get_text_message("I remember you said hi")])
        result2 = await run_agent_async(
            sessions, agent, "Do you remember what I said?", session=session
        )
        assert result2.final_output == "I remember you said hi"

    @held_or_passed
    async def test_session_memory_different_sessions_parametrized(self, sessions: AnyLoop):
        agent, model = scripted_agent()

        session_1 = sessions("session_1")
        model.enqueue([get_text_message("I like cats")])
        result1 = await run_agent_async(sessions, agent, "I like cats", session=session_1)
        assert result1.final_output == "I like cats"

        session_2 = sessions("session_2")
        model.enqueue([get_text_message("I like dogs")])
        result2 = await run_agent_async(sessions, agent, "I like dogs", session=session_2)
        assert result2.final_output == "I like dogs"

        model.enqueue([get_text_message("Yes, you mentioned cats")])
        result3 = await run_agent_async(
            sessions, agent, "What did I say I like?", session=session_1
        )
        assert result3.final_output == "Yes, you mentioned cats"

    @held_or_passed
    async def test_session_memory_appends_list_input_by_default(self, sessions: AnyLoop):
        session = sessions("test_validation_parametrized")
        agent, model = scripted_agent()

        initial_history: list[TResponseInputItem] = [
            {"role": "user", "content": "Earlier message"},
            {"role": "assistant", "content": "Saved reply"},
        ]
        await session.add_items(initial_history)

        list_input = [{"role": "user", "content": "Test message"}]

        model.enqueue([get_text_message("This should run")])
        await run_agent_async(sessions, agent, list_input, session=session)

        assert model.calls[-1].input == initial_history + list_input

    @held_or_passed
    async def test_session_callback_prepared_input(self, sessions: AnyLoop):
        agent, model = scripted_agent()
        session = sessions("session_1")

        initial_history: list[TResponseInputItem] = [
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hi, I'm here to assist you."},
        ]
        await session.add_items(initial_history)

        def filter_assistant_messages(history, new_input):
            return [item for item in history if item["role"] == "user"] + new_input

        new_turn_input = [{"role": "user", "content": "What your name?"}]
        model.enqueue([get_text_message("I'm gpt-4o")])

        await run_agent_async(
            sessions,
            agent,
            new_turn_input,
            session=session,
            run_config=RunConfig(session_input_callback=filter_assistant_messages),
        )

        expected_model_input = [initial_history[0], new_turn_input[0]]
        assert len(model.calls[-1].input) == 2
        assert model.calls[-1].input == expected_model_input

    @held_or_passed
    async def test_session_callback_repeating_history_does_not_grow_session(
        self, sessions: AnyLoop
    ):
        agent, model = scripted_agent()
        session = sessions("session_repeat")

        def repeat_first(history, new_input):
            if not history:
                return new_input
            return [*history, history[0], *new_input]

        for turn in range(3):
            model.enqueue([get_text_message(f"assistant {turn}")])
            await run_agent_async(
                sessions,
                agent,
                f"user {turn}",
                session=session,
                run_config=RunConfig(session_input_callback=repeat_first),
            )

        stored = await session.get_items()
        user_messages = [item for item in stored if item.get("role") == "user"]
        assert [item.get("content") for item in user_messages] == ["user 0", "user 1", "user 2"]
        assert len(stored) == 6

    @held_or_passed
    async def test_sqlite_session_concurrent_access(self, sessions: AnyLoop):
        """Ten writes, each from a worker thread's own new event loop, while this test's
        loop is blocked waiting for the workers (as in the SDK)."""
        session = sessions("concurrent_test")
        items: list[TResponseInputItem] = [
            {"role": "user", "content": f"Message {i}"} for i in range(10)
        ]

        def add_item(item):
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(session.add_items([item]))
            finally:
                loop.close()

        # The SDK maps and drops the outcomes; they are kept here, for the in-process case.
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
            futures = [executor.submit(add_item, item) for item in items]
        sessions.outcome([future.exception() for future in futures], started)

        retrieved = await session.get_items()
        contents = {
            content
            for item in retrieved
            for content in [item.get("content")]
            if isinstance(content, str)
        }
        expected = {f"Message {i}" for i in range(10)}
        assert contents == expected

    # -- tests/memory/test_session_limit.py -------------------------------------

    @held_or_passed
    async def test_session_limit_parameter(self, sessions: AnyLoop):
        session = sessions("limit_test")
        agent, model = scripted_agent()

        model.enqueue([get_text_message("Reply 1")])
        await run_agent_async(sessions, agent, "Message 1", session=session)
        model.enqueue([get_text_message("Reply 2")])
        await run_agent_async(sessions, agent, "Message 2", session=session)
        model.enqueue([get_text_message("Reply 3")])
        await run_agent_async(sessions, agent, "Message 3", session=session)

        all_items = await session.get_items()
        assert len(all_items) == 6

        model.enqueue([get_text_message("Reply 4")])
        await run_agent_async(
            sessions,
            agent,
            "Message 4",
            session=session,
            run_config=RunConfig(session_settings=SessionSettings(limit=2)),
        )

        last_input = model.calls[-1].input
        assert len(last_input) == 3
        assert last_input[0].get("content") == "Message 3"
        assert last_input[1].get("content")[0]["text"] == "Reply 3"
        assert last_input[2].get("content") == "Message 4"

    @held_or_passed
    async def test_session_limit_drops_unmatched_history_function_call_output(
        self, sessions: AnyLoop
    ):
        session = sessions("limit_tool_pair")
        history = cast(
            list[TResponseInputItem],
            [
                {"role": "user", "content": "What is the weather?"},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
                },
            ],
        )
        await session.add_items(history)

        assert await session.get_items(limit=2) == history[-2:]

        model = ScriptedModel()
        model.enqueue([get_text_message("Tomorrow is sunny too.")])
        agent = Agent(name="test", model=model)

        await run_agent_async(
            sessions,
            agent,
            "What about tomorrow?",
            session=session,
            run_config=RunConfig(session_settings=SessionSettings(limit=2)),
        )

        assert model.calls[-1].input == [
            history[-1],
            {"role": "user", "content": "What about tomorrow?"},
        ]

    @held_or_passed
    async def test_session_limit_zero(self, sessions: AnyLoop):
        session = sessions("limit_zero_test")
        agent, model = scripted_agent()

        model.enqueue([get_text_message("Reply 1")])
        await run_agent_async(sessions, agent, "Message 1", session=session)
        model.enqueue([get_text_message("Reply 2")])
        await run_agent_async(sessions, agent, "Message 2", session=session)

        model.enqueue([get_text_message("Reply 3")])
        await run_agent_async(
            sessions,
            agent,
            "Message 3",
            session=session,
            run_config=RunConfig(session_settings=SessionSettings(limit=0)),
        )

        last_input = model.calls[-1].input
        assert len(last_input) == 1
        assert last_input[0].get("content") == "Message 3"

    @held_or_passed
    async def test_session_limit_none_gets_all_history(self, sessions: AnyLoop):
        session = sessions("limit_none_test")
        agent, model = scripted_agent()

        for i in range(1, 6):
            model.enqueue([get_text_message(f"Reply {i}")])
            await run_agent_async(sessions, agent, f"Message {i}", session=session)

        all_items = await session.get_items()
        assert len(all_items) == 10

        model.enqueue([get_text_message("Reply 6")])
        await run_agent_async(
            sessions,
            agent,
            "Message 6",
            session=session,
            run_config=RunConfig(session_settings=SessionSettings(limit=None)),
        )

        last_input = model.calls[-1].input
        assert len(last_input) == 11
        assert last_input[0].get("content") == "Message 1"
        assert last_input[-1].get("content") == "Message 6"

    @held_or_passed
    async def test_session_limit_larger_than_history(self, sessions: AnyLoop):
        session = sessions("limit_large_test")
        agent, model = scripted_agent()

        model.enqueue([get_text_message("Reply 1")])
        await run_agent_async(sessions, agent, "Message 1", session=session)

        model.enqueue([get_text_message("Reply 2")])
        await run_agent_async(
            sessions,
            agent,
            "Message 2",
            session=session,
            run_config=RunConfig(session_settings=SessionSettings(limit=100)),
        )

        last_input = model.calls[-1].input
        assert len(last_input) == 3
        assert last_input[0].get("content") == "Message 1"
        assert last_input[1].get("content")[0]["text"] == "Reply 1"
        assert last_input[2].get("content") == "Message 2"

    # -- tests/extensions/memory/test_sqlalchemy_session.py ----------------------

    @held_or_passed
    async def test_add_items_concurrent_first_access_across_from_url_sessions_cross_loop(
        self, sessions: AnyLoop
    ):
        """Concurrent first writes should not race or hang across event loops. Each
        thread makes its session as `from_url` does: over REST with its own client."""
        barrier = threading.Barrier(2)
        results: list[tuple[str, str, Any]] = []
        results_lock = threading.Lock()

        def worker(session_id: str, content: str) -> None:
            async def run() -> tuple[str, Any]:
                client = sessions.own_client()
                session = AgentRuntimeSession(session_id, client=client)
                barrier.wait()
                try:
                    await asyncio.wait_for(
                        session.add_items([{"role": "user", "content": content}]), timeout=5
                    )
                    stored = await session.get_items()
                    return ("ok", stored)
                finally:
                    if client is not None:
                        await client.aclose()

            try:
                status, payload = asyncio.run(run())
            except Exception as exc:
                status, payload = type(exc).__name__, exc

            with results_lock:
                results.append((session_id, status, payload))

        threads = [
            threading.Thread(target=worker, args=("from_url_cross_loop_a", "one")),
            threading.Thread(target=worker, args=("from_url_cross_loop_b", "two")),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)

        assert len(results) == 2
        sessions.outcome([p if s != "ok" else None for _, s, p in results], started)
        assert [status for _, status, _ in results] == ["ok", "ok"]

        stored_by_session = {
            session_id: cast(list[TResponseInputItem], payload)
            for session_id, _, payload in results
        }
        assert stored_by_session["from_url_cross_loop_a"][0].get("content") == "one"
        assert stored_by_session["from_url_cross_loop_b"][0].get("content") == "two"

    @held_or_passed
    async def test_add_items_concurrent_first_access_with_shared_session_cross_loop(
        self, sessions: AnyLoop
    ):
        """A shared session instance should not hang when used from two event loops."""
        session = sessions("shared_session_cross_loop")
        barrier = threading.Barrier(2)
        results: list[tuple[str, str]] = []
        errors: list[BaseException | None] = []
        results_lock = threading.Lock()

        def worker(content: str) -> None:
            async def run() -> None:
                barrier.wait()
                await asyncio.wait_for(
                    session.add_items([{"role": "user", "content": content}]), timeout=5
                )

            error: BaseException | None = None
            try:
                asyncio.run(run())
                status = "ok"
            except Exception as exc:
                status, error = type(exc).__name__, exc

            with results_lock:
                results.append((content, status))
                errors.append(error)

        threads = [
            threading.Thread(target=worker, args=("one",)),
            threading.Thread(target=worker, args=("two",)),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)

        sessions.outcome(errors, started)
        assert sorted(results) == [("one", "ok"), ("two", "ok")]

        stored = await session.get_items()
        stored_contents: list[str] = []
        for item in stored:
            content = item.get("content")
            assert isinstance(content, str)
            stored_contents.append(content)
        assert sorted(stored_contents) == ["one", "two"]


class TestInProcess(SDKSessionThreadTests):
    """`init_database` on the test's loop (it owns the connection): other loops refused."""

    @pytest.fixture
    def sessions(self, store: Backend) -> AnyLoop:
        return AnyLoop()


class TestOverRest(SDKSessionThreadTests):
    """A real uvicorn server on the same database; one client shared by every loop."""

    @pytest.fixture
    async def sessions(self, store: Backend, server: LiveServer) -> AsyncIterator[AnyLoop]:
        async with AsyncAgentRuntimeClient(server.url) as client:
            yield AnyLoop(client, server.url)
