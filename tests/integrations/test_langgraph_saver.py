"""`AgentRuntimeSaver` with real LangGraph graphs, and the thread's session: created
with the first checkpoint, kept active by later ones, and taking its checkpoints
with it when deleted for good (by hand or by retention). SQLite and PostgreSQL,
in-process. The checkpointer contract itself: test_langgraph_conformance.py."""

from __future__ import annotations

import asyncio
import operator
from datetime import timedelta
from typing import Annotated, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agent_runtime.errors import InvalidInputError
from agent_runtime.integrations.langgraph import AgentRuntimeSaver
from agent_runtime.services import database
from agent_runtime.services.retention import RetentionPolicy, run_retention
from agent_runtime.timeutils import utc_now
from models import Checkpoint, CheckpointWrite, Session
from tests.cli.helpers import agent_runtime, ok
from tests.fixtures.backends import Backend


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def counter_graph(saver: AgentRuntimeSaver):  # type: ignore[no-untyped-def]
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"steps": ["a"]})
    builder.add_node("b", lambda state: {"steps": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver)


def config(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


async def checkpoints_of(thread_id: str) -> int:
    return await Checkpoint.filter(session_id=thread_id).using_db(database.get_connection()).count()


async def test_a_thread_keeps_its_state_across_runs_and_savers(store: Backend):
    graph = counter_graph(AgentRuntimeSaver())
    first = await graph.ainvoke({"steps": ["start"]}, config("t1"))
    assert first == {"steps": ["start", "a", "b"]}

    # Another saver (as another process would): the state is read back from the store.
    graph = counter_graph(AgentRuntimeSaver())
    second = await graph.ainvoke({"steps": ["again"]}, config("t1"))
    assert second == {"steps": ["start", "a", "b", "again", "a", "b"]}
    state = await graph.aget_state(config("t1"))
    assert state.values == second
    history = [s async for s in graph.aget_state_history(config("t1"))]
    assert len(history) == await checkpoints_of("t1") == 8
    assert (await graph.aget_state(config("other"))).values == {}


async def test_the_first_checkpoint_creates_the_session_and_later_ones_are_activity(
    store: Backend,
):
    db = database.get_connection()
    graph = counter_graph(AgentRuntimeSaver())
    await graph.ainvoke({"steps": []}, config("thread-1"))
    session = await database.get_session(db, "thread-1")
    assert session is not None
    assert "thread-1" in await database.list_all_sessions(db)
    assert await database.load_session(db, "thread-1") is not None  # no messages, but there

    before = session["last_activity"]
    await graph.ainvoke({"steps": []}, config("thread-1"))
    after = await database.get_session(db, "thread-1")
    assert after is not None
    assert after["last_activity"] >= before
    assert after["version"] > session["version"]


async def test_an_existing_session_keeps_its_messages(store: Backend):
    db = database.get_connection()
    await database.save_session(db, "chat", [{"role": "user", "content": "hi"}], utc_now())
    await counter_graph(AgentRuntimeSaver()).ainvoke({"steps": []}, config("chat"))
    loaded = await database.load_session(db, "chat")
    assert loaded is not None
    assert [m["content"] for m in loaded["messages"]] == ["hi"]


async def test_interrupt_and_resume(store: Backend):
    def ask(state: State) -> dict:
        answer = interrupt("approve?")
        return {"steps": [f"answer:{answer}"]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=AgentRuntimeSaver())

    paused = await graph.ainvoke({"steps": []}, config("hitl"))
    assert paused["__interrupt__"][0].value == "approve?"
    assert (
        await CheckpointWrite.filter(session_id="hitl").using_db(database.get_connection()).exists()
    )

    # Resumed by another saver: the interrupt is read back from the stored writes.
    graph = builder.compile(checkpointer=AgentRuntimeSaver())
    done = await graph.ainvoke(Command(resume="yes"), config("hitl"))
    assert done == {"steps": ["answer:yes"]}


async def test_sync_methods_run_on_the_savers_loop_from_another_thread(store: Backend):
    saver = AgentRuntimeSaver()
    graph = counter_graph(saver)
    result = await asyncio.to_thread(graph.invoke, {"steps": []}, config("sync"))
    assert result == {"steps": ["a", "b"]}
    listed = await asyncio.to_thread(lambda: list(saver.list(config("sync"))))
    assert len(listed) == await checkpoints_of("sync") == 4  # input, then a step each
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(config("sync"))


async def test_hard_deleting_the_session_deletes_its_checkpoints(store: Backend):
    db = database.get_connection()
    graph = counter_graph(AgentRuntimeSaver())
    await graph.ainvoke({"steps": []}, config("gone"))
    await graph.ainvoke({"steps": []}, config("kept"))
    writes = CheckpointWrite.filter(session_id="gone").using_db(db)
    assert await checkpoints_of("gone") > 0

    assert await database.delete_session(db, "gone", soft=True)
    assert await checkpoints_of("gone") > 0  # soft: hidden, kept
    assert await database.delete_session(db, "gone", soft=False)
    assert await checkpoints_of("gone") == 0
    assert await writes.count() == 0
    assert await checkpoints_of("kept") > 0
    assert (await graph.aget_state(config("gone"))).values == {}


async def test_retention_purges_checkpoints_with_their_session(store: Backend):
    db = database.get_connection()
    graph = counter_graph(AgentRuntimeSaver())
    await graph.ainvoke({"steps": []}, config("old"))
    await graph.ainvoke({"steps": []}, config("recent"))
    await Session.filter(id="old").using_db(db).update(deleted_at=utc_now() - timedelta(days=40))
    assert await database.hard_delete_old_sessions(db, days_old=30) == 1
    assert await checkpoints_of("old") == 0
    assert await checkpoints_of("recent") > 0


async def test_a_new_checkpoint_revives_a_soft_deleted_thread(store: Backend):
    db = database.get_connection()
    graph = counter_graph(AgentRuntimeSaver())
    await graph.ainvoke({"steps": []}, config("idle"))
    assert await database.delete_session(db, "idle")
    assert await database.get_session(db, "idle") is None
    # Its state is still there, and running on revives the session.
    assert (await graph.aget_state(config("idle"))).values == {"steps": ["a", "b"]}
    await graph.ainvoke({"steps": []}, config("idle"))
    assert await database.get_session(db, "idle") is not None


async def test_delete_thread_keeps_the_session(store: Backend):
    db = database.get_connection()
    saver = AgentRuntimeSaver()
    await counter_graph(saver).ainvoke({"steps": []}, config("t"))
    await saver.adelete_thread("t")
    assert await checkpoints_of("t") == 0
    assert await database.get_session(db, "t") is not None


async def test_copy_thread_creates_the_target_session(store: Backend):
    db = database.get_connection()
    saver = AgentRuntimeSaver()
    graph = counter_graph(saver)
    await graph.ainvoke({"steps": ["x"]}, config("src"))
    await saver.acopy_thread("src", "dst")
    assert await database.get_session(db, "dst") is not None
    assert (await graph.aget_state(config("dst"))).values == {"steps": ["x", "a", "b"]}
    await saver.acopy_thread("nothing-here", "dst2")
    assert await database.get_session(db, "dst2") is None


async def test_prune_rejects_an_unknown_strategy(store: Backend):
    with pytest.raises(ValueError, match="unknown prune strategy"):
        await AgentRuntimeSaver().aprune(["t"], strategy="keep_some")


# ---------------------------------------------------------------------------
# Retention: the latest N checkpoints of each thread (and namespace) stay


async def test_retention_keeps_the_latest_checkpoints_of_each_thread(store: Backend):
    db = database.get_connection()
    saver = AgentRuntimeSaver()
    graph = counter_graph(saver)
    await graph.ainvoke({"steps": []}, config("long"))
    await graph.ainvoke({"steps": []}, config("long"))  # 8 checkpoints
    await graph.ainvoke({"steps": []}, config("short"))  # 4
    latest = await graph.aget_state(config("long"))
    policy = RetentionPolicy(idle_hours=None, purge_deleted_after_days=None, keep_checkpoints=3)

    dry = await run_retention(db, policy, dry_run=True)
    assert dry.trimmed_checkpoints == 5 + 1
    assert await checkpoints_of("long") == 8

    report = await run_retention(db, policy)
    assert report.trimmed_checkpoints == 6
    assert await checkpoints_of("long") == await checkpoints_of("short") == 3
    assert (await graph.aget_state(config("long"))).values == latest.values
    assert (await run_retention(db, policy)).trimmed_checkpoints == 0
    # The state goes on from the latest checkpoint.
    assert await graph.ainvoke({"steps": []}, config("long")) == {"steps": ["a", "b"] * 3}

    with pytest.raises(InvalidInputError):
        await run_retention(db, RetentionPolicy(keep_checkpoints=0))


async def test_cleanup_command_keeps_the_latest_checkpoints(store: Backend):
    graph = counter_graph(AgentRuntimeSaver())
    await graph.ainvoke({"steps": []}, config("cli"))  # 4 checkpoints
    # The session itself is recent: the other steps change nothing.
    dry = await asyncio.to_thread(
        agent_runtime, "cleanup", "--keep-checkpoints", "1", "--dry-run", url=store.url
    )
    assert "3 LangGraph checkpoint(s) would be deleted" in ok(dry)
    assert await checkpoints_of("cli") == 4
    real = await asyncio.to_thread(
        agent_runtime, "cleanup", "--keep-checkpoints", "1", url=store.url
    )
    assert "3 LangGraph checkpoint(s) deleted" in ok(real)
    assert await checkpoints_of("cli") == 1
    assert (await graph.aget_state(config("cli"))).values == {"steps": ["a", "b"]}
    skipped = await asyncio.to_thread(
        agent_runtime, "cleanup", "--keep-checkpoints", "1", "--skip", "checkpoints", url=store.url
    )
    assert "LangGraph" not in ok(skipped)
