"""`AgentRuntimeSession`: the OpenAI Agents SDK's `Session` on agent-runtime.

Ported from the SDK's own session tests (tests/test_session.py for
`SQLiteSession`: memory operations, `limit`, ordering of items written at the
same instant, concurrent first access, `pop_item`, `clear_session`, and the
`Runner` integration), on SQLite and PostgreSQL, each test in-process and over
REST (the `sessions` fixture).
"""

from __future__ import annotations

import asyncio
from unittest.mock import ANY

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner
from agents.memory import SessionSettings
from agents.memory.session import Session

from agent_runtime.integrations.openai_agents import (
    ITEM_KEY,
    WRITE_KEY,
    AgentRuntimeSession,
)
from agent_runtime.services import database
from tests.integrations.conftest import Sessions, fake_model, text_message


def user(text: str) -> dict:
    return {"role": "user", "content": text}


async def test_implements_the_sdk_session_protocol(sessions: Sessions):
    session = sessions("s")
    assert isinstance(session, AgentRuntimeSession)
    assert isinstance(session, Session)
    assert session.client is sessions.client
    assert session.session_id == "s"
    assert session.session_settings == SessionSettings()


async def test_add_get_pop_clear(sessions: Sessions):
    session = sessions("memory")
    assert await session.get_items() == []
    assert await session.pop_item() is None

    items = [user("Hello"), {"role": "assistant", "content": "Hi there!"}]
    await session.add_items(items)
    assert await session.get_items() == items

    await session.add_items([user("How are you?")])
    assert await session.get_items() == [*items, user("How are you?")]

    assert await session.pop_item() == user("How are you?")
    assert await session.get_items() == items

    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items([user("again")])  # usable after clearing
    assert await session.get_items() == [user("again")]


async def test_get_items_limit_is_the_latest_n_oldest_first(sessions: Sessions):
    session = sessions("limit")
    items = [user(f"message {i}") for i in range(5)]
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=None) == items
    assert await session.get_items(limit=2) == items[3:]
    assert await session.get_items(limit=1) == items[4:]
    assert await session.get_items(limit=5) == items
    assert await session.get_items(limit=10) == items
    assert await session.get_items(limit=0) == []
    assert await sessions("empty").get_items(limit=3) == []


async def test_items_keep_every_key_and_their_order(sessions: Sessions):
    """Any Responses API input item, not only chat messages, comes back unchanged."""
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "thinking"}],
            "encrypted_content": None,
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"},
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "18C", "annotations": [], "logprobs": []}],
        },
        {"type": "custom", "nested": {"list": [1, 2.5, True, None, {"ü": "🌍"}]}, "empty": {}},
    ]
    session = sessions("fidelity")
    await session.add_items(items)
    assert await session.get_items() == items

    # The stored messages are readable as chat messages too (console, REST, load_session).
    loaded = await database.load_session(sessions.db, "fidelity")
    assert loaded is not None
    assert [(m["role"], m["content"]) for m in loaded["messages"]] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "thinking"),
        ("assistant", None),
        ("tool", "18C, sunny"),
        ("assistant", "18C"),
        ("assistant", None),
    ]
    rows = await database.get_messages_paginated(sessions.db, "fidelity")
    assert len(rows) == len(items)


async def test_items_written_at_the_same_instant_keep_their_order(sessions: Sessions):
    """The SDK's same-timestamp test: order is the stored position, never time."""
    session = sessions("same-instant")
    batch = [user(f"batch {i}") for i in range(50)]
    await session.add_items(batch)
    singles = [user(f"single {i}") for i in range(20)]
    for item in singles:
        await session.add_items([item])
    assert await session.get_items() == batch + singles
    assert await session.get_items(limit=3) == singles[-3:]


async def test_concurrent_first_access_loses_nothing(sessions: Sessions):
    """Many writers (separate session objects) create and fill one new session at once."""
    writers = [sessions("first-access") for _ in range(10)]
    await asyncio.gather(
        *(w.add_items([user(f"w{n} a"), user(f"w{n} b")]) for n, w in enumerate(writers))
    )
    items = await sessions("first-access").get_items()
    assert len(items) == 20
    for n in range(10):  # each batch is contiguous, in its order
        i = items.index(user(f"w{n} a"))
        assert items[i + 1] == user(f"w{n} b")


async def test_concurrent_pops_return_each_item_once(sessions: Sessions):
    items = [user(f"item {i}") for i in range(12)]
    await sessions("pops").add_items(items)
    popped = await asyncio.gather(*(sessions("pops").pop_item() for _ in range(16)))
    got = [p for p in popped if p is not None]
    assert len(got) == 12
    assert sorted(p["content"] for p in got) == sorted(i["content"] for i in items)
    assert popped.count(None) == 4
    assert await sessions("pops").get_items() == []


async def test_pops_racing_appends_lose_no_append(sessions: Sessions):
    session = sessions("race")
    await session.add_items([user(f"old {i}") for i in range(6)])
    results = await asyncio.gather(
        *(session.pop_item() for _ in range(6)),
        *(session.add_items([user(f"new {i}")]) for i in range(6)),
    )
    popped = [r for r in results[:6] if r is not None]
    remaining = await session.get_items()
    contents = sorted([p["content"] for p in popped] + [r["content"] for r in remaining])
    assert contents == sorted([f"old {i}" for i in range(6)] + [f"new {i}" for i in range(6)])


async def test_sessions_are_isolated_and_clear_touches_one(sessions: Sessions):
    a, b = sessions("a"), sessions("b")
    await a.add_items([user("for a")])
    await b.add_items([user("for b")])
    await a.clear_session()
    assert await a.get_items() == []
    assert await b.get_items() == [user("for b")]
    await sessions("never-written").clear_session()  # no error, nothing created
    assert await database.get_session(sessions.db, "never-written") is None


async def test_messages_written_by_other_code_read_as_items(sessions: Sessions):
    db = sessions.db
    await database.append_messages(
        db, "mixed", [{"role": "user", "content": "from the REST API"}], "2026-01-01T00:00:00Z"
    )
    session = sessions("mixed")
    output = {"type": "function_call_output", "call_id": "c", "output": "x"}
    await session.add_items([output])
    assert await session.get_items() == [user("from the REST API"), output]
    assert await session.pop_item() == output
    assert await session.get_items() == [user("from the REST API")]
    rows = await database.get_messages_paginated(db, "mixed")
    assert rows == [{"role": "user", "content": "from the REST API"}]


async def test_the_item_is_stored_in_the_message_metadata(sessions: Sessions):
    from agent_runtime.services.messages import stored_messages

    await sessions("meta").add_items([user("hi"), user("there")])
    first, second = await stored_messages(sessions.db, "meta")
    assert second["metadata"] == {ITEM_KEY: user("there")}
    if sessions.client is None:
        assert first["metadata"] == {ITEM_KEY: user("hi")}
    else:  # over REST, the first message of a write also carries the write's id
        assert first["metadata"] == {ITEM_KEY: user("hi"), WRITE_KEY: ANY}


async def test_a_second_runner_run_sees_the_first_runs_history(sessions: Sessions):
    model = fake_model([text_message("Nice to meet you, Ada.")], [text_message("You are Ada.")])
    agent = Agent(name="assistant", instructions="Be brief.", model=model)

    first = await Runner.run(agent, "My name is Ada.", session=sessions("run"))
    assert first.final_output == "Nice to meet you, Ada."

    # A new session object (as in a new process): the history comes from the store.
    second = await Runner.run(agent, "What is my name?", session=sessions("run"))
    assert second.final_output == "You are Ada."

    sent = model.inputs[1]
    assert [item.get("role") for item in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada."
    assert sent[2]["content"] == "What is my name?"
    history = await sessions("run").get_items()
    assert len(history) == 4
    assert history[:3] == sent

    loaded = await database.load_session(sessions.db, "run")
    assert loaded is not None
    assert [m["content"] for m in loaded["messages"]] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
        "You are Ada.",
    ]
