"""The OpenAI Agents SDK's own session tests, ported to `AgentRuntimeSession`.

Sources (openai/openai-agents-python): tests/test_session.py (now
tests/memory/test_session.py: the `SQLiteSession` and `Runner` tests),
tests/memory/test_session_limit.py and tests/extensions/memory/test_sqlalchemy_session.py.
Each test keeps its source's name and its assertions; it runs in-process and over
REST (the `sessions` fixture) on SQLite and PostgreSQL. The SDK's `ScriptedModel`
stands in for the model (no network).

The tests that use one session from several event loops (the `run_sync` cases of
the runner-parametrised tests, the threaded ones) are in
test_openai_agents_sdk_threads.py, over REST to a real server and in-process.

Not ported, and why: tests of one store's internals (SQL text, table creation,
engine registries, mocked DB-API results, corrupt JSON rows, which this store
cannot hold: items are stored as JSON documents, never as text to decode); and the
tests of the SDK's own input validation, which never reach a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import pytest

pytest.importorskip("agents")

from agents import Agent, RunConfig, Runner
from agents.memory import SessionSettings
from agents.testing import assistant_message

from agent_runtime.services import database
from tests.fixtures.backends import Backend
from tests.integrations.conftest import Sessions, scripted_agent, user

RUNNERS = ["run", "run_streamed"]


def contents(items: list) -> list:
    return [item.get("content") for item in items]


async def run_agent(runner_method: str, agent: Agent, input_data, **kwargs):
    if runner_method == "run":
        return await Runner.run(agent, input_data, **kwargs)
    result = Runner.run_streamed(agent, input_data, **kwargs)
    async for _event in result.stream_events():
        pass
    return result


# -- tests/test_session.py ------------------------------------------------------


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_memory_basic_functionality_parametrized(
    sessions: Sessions, runner_method: str
):
    agent, model = scripted_agent()
    session = sessions("test_session_123")

    model.enqueue([assistant_message("San Francisco")])
    result1 = await run_agent(
        runner_method, agent, "What city is the Golden Gate Bridge in?", session=session
    )
    assert result1.final_output == "San Francisco"

    model.enqueue([assistant_message("California")])
    result2 = await run_agent(runner_method, agent, "What state is it in?", session=session)
    assert result2.final_output == "California"

    last_input = model.last_call.input
    assert len(last_input) > 1
    assert last_input[0]["content"] == "What city is the Golden Gate Bridge in?"
    assert last_input[-1]["content"] == "What state is it in?"


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_memory_different_sessions_parametrized(
    sessions: Sessions, runner_method: str
):
    agent, model = scripted_agent()
    session_1, session_2 = sessions("session_1"), sessions("session_2")

    model.enqueue([assistant_message("I like cats")])
    assert (await run_agent(runner_method, agent, "I like cats", session=session_1)).final_output
    model.enqueue([assistant_message("I like dogs")])
    assert (await run_agent(runner_method, agent, "I like dogs", session=session_2)).final_output

    model.enqueue([assistant_message("Yes, you mentioned cats")])
    result3 = await run_agent(runner_method, agent, "What did I say I like?", session=session_1)
    assert result3.final_output == "Yes, you mentioned cats"
    sent = contents(model.last_call.input)
    assert "I like cats" in sent
    assert "I like dogs" not in sent


async def test_sqlite_session_memory_direct(sessions: Sessions):
    session = sessions("direct_test")
    items = [user("Hello"), {"role": "assistant", "content": "Hi there!"}]

    await session.add_items(items)
    retrieved = await session.get_items()

    assert [(i.get("role"), i.get("content")) for i in retrieved] == [
        ("user", "Hello"),
        ("assistant", "Hi there!"),
    ]
    await session.clear_session()
    assert await session.get_items() == []


async def test_sqlite_session_memory_pop_item(sessions: Sessions):
    session = sessions("pop_test")
    assert await session.pop_item() is None
    items = [
        user("Hello"),
        {"role": "assistant", "content": "Hi there!"},
        user("How are you?"),
    ]
    await session.add_items(items)
    assert len(await session.get_items()) == 3

    assert await session.pop_item() == user("How are you?")
    assert contents(await session.get_items()) == ["Hello", "Hi there!"]
    assert await session.pop_item() == {"role": "assistant", "content": "Hi there!"}
    assert await session.pop_item() == user("Hello")
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_session_memory_pop_different_sessions(sessions: Sessions):
    session_1, session_2 = sessions("session_1"), sessions("session_2")
    await session_1.add_items([user("Session 1 message")])
    await session_2.add_items([user("Session 2 message 1"), user("Session 2 message 2")])

    assert await session_2.pop_item() == user("Session 2 message 2")

    assert contents(await session_1.get_items()) == ["Session 1 message"]
    assert contents(await session_2.get_items()) == ["Session 2 message 1"]


async def test_sqlite_session_get_items_with_limit(sessions: Sessions):
    session = sessions("count_test")
    texts = ["Message 1", "Response 1", "Message 2", "Response 2", "Message 3", "Response 3"]
    await session.add_items(
        [{"role": "user" if t.startswith("M") else "assistant", "content": t} for t in texts]
    )

    assert contents(await session.get_items()) == texts
    assert contents(await session.get_items(limit=2)) == texts[-2:]
    assert contents(await session.get_items(limit=4)) == texts[-4:]
    assert contents(await session.get_items(limit=10)) == texts
    assert await session.get_items(limit=0) == []


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_callback_prepared_input(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("session_1")
    initial_history = [user("Hello there."), {"role": "assistant", "content": "Hi, I'm here."}]
    await session.add_items(initial_history)

    def filter_assistant_messages(history, new_input):
        return [item for item in history if item["role"] == "user"] + new_input

    new_turn_input = [user("What your name?")]
    model.enqueue([assistant_message("I'm gpt-4o")])
    await run_agent(
        runner_method,
        agent,
        new_turn_input,
        session=session,
        run_config=RunConfig(session_input_callback=filter_assistant_messages),
    )

    assert model.last_call.input == [initial_history[0], new_turn_input[0]]


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_memory_with_explicit_instance_parametrized(
    sessions: Sessions, runner_method: str
):
    agent, model = scripted_agent()
    session = sessions("test_session_456")

    model.enqueue([assistant_message("Hello")])
    result1 = await run_agent(runner_method, agent, "Hi there", session=session)
    assert result1.final_output == "Hello"

    model.enqueue([assistant_message("I remember you said hi")])
    result2 = await run_agent(runner_method, agent, "Do you remember what I said?", session=session)
    assert result2.final_output == "I remember you said hi"


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_memory_appends_list_input_by_default(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("test_validation_parametrized")
    initial_history = [user("Earlier message"), {"role": "assistant", "content": "Saved reply"}]
    await session.add_items(initial_history)

    list_input = [user("Test message")]
    model.enqueue([assistant_message("This should run")])
    await run_agent(runner_method, agent, list_input, session=session)

    assert model.last_call.input == initial_history + list_input


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_callback_repeating_history_does_not_grow_session(
    sessions: Sessions, runner_method: str
):
    agent, model = scripted_agent()
    session = sessions("session_repeat")

    def repeat_first(history, new_input):
        if not history:
            return new_input
        return [*history, history[0], *new_input]

    for turn in range(3):
        model.enqueue([assistant_message(f"assistant {turn}")])
        await run_agent(
            runner_method,
            agent,
            f"user {turn}",
            session=session,
            run_config=RunConfig(session_input_callback=repeat_first),
        )

    stored = await session.get_items()
    assert contents([item for item in stored if item.get("role") == "user"]) == [
        "user 0",
        "user 1",
        "user 2",
    ]
    assert len(stored) == 6


async def test_sqlite_session_unicode_content(sessions: Sessions):
    session = sessions("unicode_test")
    await session.add_items(
        [user("こんにちは"), {"role": "assistant", "content": "😊👍"}, user("Привет")]
    )
    assert contents(await session.get_items()) == ["こんにちは", "😊👍", "Привет"]


async def test_sqlite_session_special_characters_and_sql_injection(sessions: Sessions):
    texts = [
        "O'Reilly",
        "DROP TABLE sessions;",
        '"SELECT * FROM users WHERE name = "admin";"',
        "Robert'); DROP TABLE students;--",
        "Normal message",
    ]
    session = sessions("special_chars_test")
    await session.add_items([user(t) for t in texts])
    assert contents(await session.get_items()) == texts


async def test_sqlite_session_concurrent_access(sessions: Sessions):
    session = sessions("concurrent_test")
    items = [user(f"Message {i}") for i in range(10)]

    await asyncio.gather(*(session.add_items([item]) for item in items))

    assert set(contents(await session.get_items())) == {f"Message {i}" for i in range(10)}


# -- tests/extensions/memory/test_sqlalchemy_session.py ----------------------------


async def test_sqlalchemy_session_can_store_non_ascii_without_escaping(sessions: Sessions):
    session = sessions("non_ascii_storage")
    item = user("café")
    await session.add_items([item])

    loaded = await database.load_session(sessions.db, "non_ascii_storage")
    assert loaded is not None
    assert loaded["messages"][0]["content"] == "café"  # readable, as written
    assert await session.get_items() == [item]


async def test_session_isolation(sessions: Sessions):
    agent, model = scripted_agent()
    session1, session2 = sessions("session_1"), sessions("session_2")

    model.enqueue([assistant_message("I like cats.")])
    await Runner.run(agent, "I like cats.", session=session1)
    model.enqueue([assistant_message("I like dogs.")])
    await Runner.run(agent, "I like dogs.", session=session2)

    model.enqueue([assistant_message("You said you like cats.")])
    result = await Runner.run(agent, "What animal did I say I like?", session=session1)
    assert "cats" in result.final_output.lower()
    sent = " ".join(str(c) for c in contents(model.last_call.input))
    assert "cats" in sent
    assert "dogs" not in sent


async def test_session_ids_are_case_sensitive(sessions: Sessions):
    upper, lower = sessions("Foo"), sessions("foo")
    await upper.add_items([user("upper")])
    await lower.add_items([user("lower")])

    assert await upper.get_items() == [user("upper")]
    assert await lower.get_items() == [user("lower")]


async def test_session_ids_keep_trailing_spaces(sessions: Sessions):
    bare, padded = sessions("tenant"), sessions("tenant ")
    await bare.add_items([user("bare")])
    await padded.add_items([user("padded")])

    assert await bare.get_items() == [user("bare")]
    assert await padded.get_items() == [user("padded")]


async def test_get_items_limit_returns_fewer_when_history_exhausted(sessions: Sessions):
    session = sessions("limit_exhausted")
    await session.add_items([user("only valid")])
    assert contents(await session.get_items(limit=5)) == ["only valid"]


async def test_concurrent_pop_item_returns_each_row_once(sessions: Sessions):
    writer, other = sessions("concurrent_pop"), sessions("concurrent_pop")
    await writer.add_items([user("first"), {"role": "assistant", "content": "second"}])

    popped = await asyncio.wait_for(asyncio.gather(writer.pop_item(), other.pop_item()), 10)

    assert {item["content"] for item in popped if item is not None} == {"first", "second"}
    assert await writer.get_items() == []


async def test_add_empty_items_list(sessions: Sessions):
    session = sessions("add_empty_test")
    await session.add_items([])
    assert await session.get_items() == []
    assert await database.get_session(sessions.db, "add_empty_test") is None  # nothing created


async def test_add_items_concurrent_first_access_with_create_tables(sessions: Sessions):
    session = sessions("concurrent_first_access")
    submitted = [f"msg-{i}" for i in range(25)]

    results = await asyncio.gather(
        *(session.add_items([user(content)]) for content in submitted), return_exceptions=True
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert sorted(contents(await session.get_items())) == sorted(submitted)


async def test_add_items_concurrent_first_access_across_sessions_with_shared_engine(
    sessions: Sessions,
):
    session_a, session_b = sessions("shared_engine_a"), sessions("shared_engine_b")

    results = await asyncio.gather(
        session_a.add_items([user("one")]),
        session_b.add_items([user("two")]),
        return_exceptions=True,
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    assert contents(await session_a.get_items()) == ["one"]
    assert contents(await session_b.get_items()) == ["two"]


@contextlib.asynccontextmanager
async def another_writer_holding(backend: Backend, session_id: str) -> AsyncIterator[None]:
    """Another process's writer in a transaction on the session while in the block:
    SQLite's database-wide write lock, PostgreSQL's lock on the session's row."""
    if backend.dialect == "sqlite":
        other = sqlite3.connect(backend.url.removeprefix("sqlite://"), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    conn = await asyncpg.connect(backend.direct)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", session_id)
            yield
    finally:
        await conn.close()


async def test_add_items_waits_for_transient_sqlite_write_lock(
    sessions: Sessions, backend: Backend
):
    session = sessions("sqlite_write_lock_retry")
    await session.add_items([user("before-lock")])

    async with another_writer_holding(backend, "sqlite_write_lock_retry"):
        blocked_write = asyncio.create_task(session.add_items([user("after-lock")]))
        await asyncio.sleep(0.3)
        assert not blocked_write.done()
    await asyncio.wait_for(blocked_write, timeout=10)

    assert contents(await session.get_items()) == ["before-lock", "after-lock"]


async def test_pop_item_same_timestamp_returns_latest(sessions: Sessions):
    session = sessions("same_timestamp_pop_test")
    reasoning = {"id": "rs_pop_same_ts", "type": "reasoning", "summary": []}
    message = {
        "id": "msg_pop_same_ts",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "...", "annotations": []}],
    }
    await session.add_items([reasoning, message])  # one write: one instant

    popped = await session.pop_item()
    assert popped is not None
    assert popped["id"] == "msg_pop_same_ts"
    assert [item["id"] for item in await session.get_items()] == ["rs_pop_same_ts"]


async def test_session_settings_default(sessions: Sessions):
    session = sessions("default_settings_test")
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit is None


@pytest.mark.parametrize("use_dictionary", [False, True], ids=["class", "dictionary"])
async def test_session_settings_from_url(sessions: Sessions, use_dictionary: bool):
    settings = {"limit": 5} if use_dictionary else SessionSettings(limit=5)
    session = sessions("from_url_settings_test", session_settings=settings)
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit == 5


async def test_get_items_uses_session_settings_limit(sessions: Sessions):
    session = sessions("uses_settings_limit_test", session_settings=SessionSettings(limit=3))
    await session.add_items([user(f"Message {i}") for i in range(5)])

    assert contents(await session.get_items()) == ["Message 2", "Message 3", "Message 4"]


async def test_get_items_explicit_limit_overrides_session_settings(sessions: Sessions):
    session = sessions("explicit_override_test", session_settings=SessionSettings(limit=5))
    await session.add_items([user(f"Message {i}") for i in range(10)])

    assert contents(await session.get_items(limit=2)) == ["Message 8", "Message 9"]


async def test_runner_with_session_settings_override(sessions: Sessions):
    agent, model = scripted_agent()
    session = sessions("runner_override_test", session_settings=SessionSettings(limit=100))
    await session.add_items([user(f"Turn {i}") for i in range(10)])

    model.enqueue([assistant_message("Got it")])
    await Runner.run(
        agent,
        "New question",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )

    history = [i for i in model.last_call.input if i.get("content") != "New question"]
    assert contents(history) == ["Turn 8", "Turn 9"]


# -- tests/memory/test_session_limit.py ---------------------------------------------


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_limit_parameter(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("limit_test")
    for i in (1, 2, 3):
        model.enqueue([assistant_message(f"Reply {i}")])
        await run_agent(runner_method, agent, f"Message {i}", session=session)
    assert len(await session.get_items()) == 6

    model.enqueue([assistant_message("Reply 4")])
    await run_agent(
        runner_method,
        agent,
        "Message 4",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )

    last_input = model.last_call.input
    assert len(last_input) == 3
    assert last_input[0].get("content") == "Message 3"
    assert last_input[1].get("content")[0]["text"] == "Reply 3"
    assert last_input[2].get("content") == "Message 4"


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_limit_drops_unmatched_history_function_call_output(
    sessions: Sessions, runner_method: str
):
    session = sessions("limit_tool_pair")
    history = [
        user("What is the weather?"),
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
        },
    ]
    await session.add_items(history)
    assert await session.get_items(limit=2) == history[-2:]

    agent, model = scripted_agent()
    model.enqueue([assistant_message("Tomorrow is sunny too.")])
    await run_agent(
        runner_method,
        agent,
        "What about tomorrow?",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )

    assert model.last_call.input == [history[-1], user("What about tomorrow?")]


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_limit_zero(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("limit_zero_test")
    for i in (1, 2):
        model.enqueue([assistant_message(f"Reply {i}")])
        await run_agent(runner_method, agent, f"Message {i}", session=session)

    model.enqueue([assistant_message("Reply 3")])
    await run_agent(
        runner_method,
        agent,
        "Message 3",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=0)),
    )

    assert contents(model.last_call.input) == ["Message 3"]


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_limit_none_gets_all_history(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("limit_none_test")
    for i in range(1, 6):
        model.enqueue([assistant_message(f"Reply {i}")])
        await run_agent(runner_method, agent, f"Message {i}", session=session)
    assert len(await session.get_items()) == 10

    model.enqueue([assistant_message("Reply 6")])
    await run_agent(
        runner_method,
        agent,
        "Message 6",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=None)),
    )

    last_input = model.last_call.input
    assert len(last_input) == 11
    assert last_input[0].get("content") == "Message 1"
    assert last_input[-1].get("content") == "Message 6"


@pytest.mark.parametrize("runner_method", RUNNERS)
async def test_session_limit_larger_than_history(sessions: Sessions, runner_method: str):
    agent, model = scripted_agent()
    session = sessions("limit_large_test")
    model.enqueue([assistant_message("Reply 1")])
    await run_agent(runner_method, agent, "Message 1", session=session)

    model.enqueue([assistant_message("Reply 2")])
    await run_agent(
        runner_method,
        agent,
        "Message 2",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=100)),
    )

    last_input = model.last_call.input
    assert len(last_input) == 3
    assert last_input[0].get("content") == "Message 1"
    assert last_input[1].get("content")[0]["text"] == "Reply 1"
    assert last_input[2].get("content") == "Message 2"
