"""Tool approvals of an OpenAI Agents SDK run, decided through agent-runtime.

A tool with `needs_approval=True` pauses the run; its calls become approvals of the
session, the paused `RunState` is kept in the session's agent context metadata,
and a decision taken through the service resumes the run: an approved call runs
exactly once (claimed, then reported), a rejected one sends the reviewer's
message to the model instead. Each test runs in-process and over REST (the
`sessions` fixture: a session built with `client=` makes the helpers use the client).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool

from agent_runtime.config import get_settings
from agent_runtime.integrations.openai_agents import (
    RUN_STATE_KEY,
    AgentRuntimeSession,
    load_run_state,
    resume_run,
    run_with_approvals,
    submit_interruptions,
)
from agent_runtime.services import database
from agent_runtime.services.events import read_events
from models import EventType
from tests.integrations.conftest import Sessions, fake_model, function_call, text_message


async def decide(sessions: Sessions, call_id: str, status: str, **kwargs: Any) -> None:
    """Decide the approval as a reviewer would: through the REST API when the session
    is remote, with the service API in-process."""
    if sessions.client is not None:
        await sessions.client.decide(call_id, status, **kwargs)
    else:
        await database.decide_approval(sessions.db, call_id, status, **kwargs)


def weather_agent(model, calls: list[str]) -> Agent:
    @function_tool(needs_approval=True)
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"18C, sunny in {city}"

    return Agent(name="assistant", model=model, tools=[get_weather])


def scripted_model():
    return fake_model(
        [function_call("get_weather", '{"city": "Paris"}', "call_paris")],
        [text_message("It is 18C and sunny in Paris.")],
    )


async def test_an_approved_call_runs_once_and_the_run_finishes(sessions: Sessions):
    calls: list[str] = []
    model = scripted_model()
    agent = weather_agent(model, calls)
    session = sessions("hitl")
    db = sessions.db

    paused = await Runner.run(agent, "Weather in Paris?", session=session)
    assert [i.call_id for i in paused.interruptions] == ["call_paris"]
    assert await submit_interruptions(paused, session) == ["call_paris"]
    assert calls == []

    approval = await database.get_approval(db, "call_paris")
    assert approval is not None
    assert (approval["status"], approval["tool_name"], approval["arguments"]) == (
        "pending",
        "get_weather",
        {"city": "Paris"},
    )
    assert await load_run_state(session) is not None

    # Two workers wait to resume the run; the decision wakes both, one runs it.
    workers = [
        asyncio.create_task(resume_run(agent, sessions("hitl"), claimed_by=name))
        for name in ("worker-1", "worker-2")
    ]
    await asyncio.sleep(0.2)
    assert not any(w.done() for w in workers)
    await decide(sessions, "call_paris", "approved", decided_by="alice")
    results = await asyncio.wait_for(asyncio.gather(*workers), 30)

    finished = [r for r in results if r is not None]
    assert len(finished) == 1
    assert finished[0].final_output == "It is 18C and sunny in Paris."
    assert calls == ["Paris"]  # exactly once

    approval = await database.get_approval(db, "call_paris")
    assert approval is not None
    assert approval["status"] == "executed"
    assert approval["result"] == "18C, sunny in Paris"
    assert await load_run_state(session) is None
    assert await resume_run(agent, session) is None  # nothing left to resume

    # The whole exchange is the session's history, tool call and output included.
    items = await session.get_items()
    assert [i.get("type", "message") for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]


async def test_a_rejection_sends_the_reviewers_message_and_runs_nothing(sessions: Sessions):
    calls: list[str] = []
    model = scripted_model()
    agent = weather_agent(model, calls)
    session = sessions("rejected")
    db = sessions.db

    paused = await Runner.run(agent, "Weather in Paris?", session=session)
    await submit_interruptions(paused, session)
    await decide(sessions, "call_paris", "rejected", decided_by="bob", message="Not allowed today.")
    result = await resume_run(agent, session, timeout=10)
    assert result is not None
    assert result.final_output == "It is 18C and sunny in Paris."
    assert calls == []
    sent = model.inputs[1]
    outputs = [i for i in sent if i.get("type") == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [("call_paris", "Not allowed today.")]
    approval = await database.get_approval(db, "call_paris")
    assert approval is not None
    assert approval["status"] == "rejected"


async def test_run_with_approvals_waits_for_the_decision(sessions: Sessions):
    calls: list[str] = []
    agent = weather_agent(scripted_model(), calls)
    session = sessions("loop")
    db = sessions.db

    run = asyncio.create_task(run_with_approvals(agent, "Weather in Paris?", session, timeout=30))
    for _ in range(200):  # until the approval is recorded
        if await database.get_approval(db, "call_paris") is not None:
            break
        await asyncio.sleep(0.05)
    assert not run.done()
    await decide(sessions, "call_paris", "approved", decided_by="alice")
    result = await asyncio.wait_for(run, 30)
    assert result is not None
    assert result.final_output == "It is 18C and sunny in Paris."
    assert calls == ["Paris"]


async def test_an_undecided_approval_times_out(sessions: Sessions):
    agent = weather_agent(scripted_model(), [])
    session = sessions("slow")
    paused = await Runner.run(agent, "Weather in Paris?", session=session)
    await submit_interruptions(paused, session)
    with pytest.raises(TimeoutError):
        await resume_run(agent, session, timeout=0.2)
    assert await load_run_state(session) is not None  # still resumable


async def test_the_run_state_leaves_the_rest_of_the_agent_context_alone(sessions: Sessions):
    db = sessions.db
    await database.save_session(db, "ctx", [], "2026-01-02T12:00:00Z")
    history = [
        {
            "from": "triage",
            "to": "assistant",
            "reason": "weather",
            "timestamp": "2026-01-02T12:05:00Z",
            "metadata": {"confidence": 0.9},
        }
    ]
    await database.save_agent_context(
        db,
        "ctx",
        "assistant",
        history,
        {"tenant": "acme"},
        "2026-01-02T12:00:00Z",
        "2026-01-02T12:05:00Z",
        1,
    )
    before = await database.load_agent_context(db, "ctx")

    agent = weather_agent(scripted_model(), [])
    session = sessions("ctx")
    paused = await Runner.run(agent, "Weather in Paris?", session=session)
    await submit_interruptions(paused, session)
    during = await database.load_agent_context(db, "ctx")
    assert during is not None
    assert during["metadata"]["tenant"] == "acme"
    assert during["metadata"][RUN_STATE_KEY] == await load_run_state(session)
    assert {k: v for k, v in during.items() if k != "metadata"} == {
        k: v for k, v in (before or {}).items() if k != "metadata"
    }

    await decide(sessions, "call_paris", "approved")
    assert await resume_run(agent, session, timeout=10) is not None
    assert await database.load_agent_context(db, "ctx") == before


async def test_an_in_process_claim_lasts_the_configured_lease(store, monkeypatch):
    # As over REST: the lease a resumer holds is AGENT_RUNTIME__CLAIM_LEASE_SECONDS.
    monkeypatch.setenv("AGENT_RUNTIME__CLAIM_LEASE_SECONDS", "42")
    get_settings.cache_clear()
    try:
        db = database.get_connection()
        agent = weather_agent(scripted_model(), [])
        paused = await Runner.run(agent, "Weather in Paris?", session=AgentRuntimeSession("lease"))
        await submit_interruptions(paused, "lease")
        await database.decide_approval(db, "call_paris", "approved")
        assert await resume_run(agent, AgentRuntimeSession("lease"), timeout=10) is not None

        [claimed] = await read_events(db, types=[EventType.APPROVAL_CLAIMED])
        lease = datetime.fromisoformat(claimed["data"]["expires_at"]) - claimed["created_at"]
        assert abs(lease - timedelta(seconds=42)) < timedelta(seconds=1)  # not the 300 s default
    finally:
        monkeypatch.delenv("AGENT_RUNTIME__CLAIM_LEASE_SECONDS")
        get_settings.cache_clear()
