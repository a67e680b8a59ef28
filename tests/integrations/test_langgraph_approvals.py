"""Human approval of LangGraph nodes' tool calls through agent-runtime's approvals.

`ask_approval` in a node pauses the graph; `run_with_approvals` records each pending
ask as an approval of the thread's session (a call id stable for that interrupt),
waits for the decision with the service's wait and resumes the graph with it;
`run_once` runs the approved call exactly once and, when the node runs again,
returns the recorded result without calling the tool.

Each test runs on SQLite and PostgreSQL, in-process (service API, the graph on
`AgentRuntimeSaver`) and over REST (`client=`, to the app over ASGI; the graph on
LangGraph's `InMemorySaver`, as a process without the database would have). The
reviewer is another task deciding as a person in the console would.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.integrations.langgraph import (
    AgentRuntimeSaver,
    ApprovalDecision,
    ApprovalRejectedError,
    approval_call_id,
    ask_approval,
    run_once,
    run_with_approvals,
)
from agent_runtime.services import database
from models import PendingApproval
from tests.fixtures.backends import Backend, truncate
from tests.fixtures.remote import app_client
from tests.integrations.conftest import in_process_store


@dataclass(frozen=True)
class Where:
    """The store the graph's approvals go to: in-process (`client` None) or over REST;
    `db` is the store's connection, for the reviewer and the checks."""

    db: BaseDBAsyncClient
    client: AsyncAgentRuntimeClient | None

    def saver(self) -> Any:
        return AgentRuntimeSaver() if self.client is None else InMemorySaver()

    async def decide(self, call_id: str, status: str, **kwargs: Any) -> None:
        """Decide as a reviewer: through the REST API, or the service API in-process."""
        if self.client is not None:
            await self.client.decide(call_id, status, **kwargs)
        else:
            await database.decide_approval(self.db, call_id, status, **kwargs)

    async def pending(self, session_id: str, count: int = 1) -> list[dict[str, Any]]:
        """The session's pending approvals, once there are `count` (as a reviewer sees
        them appear in the console)."""
        for _ in range(400):
            rows = await database.get_pending_approvals(self.db, session_id)
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.025)
        raise AssertionError(f"no {count} pending approval(s) in {session_id!r}")

    async def approvals(self, session_id: str) -> list[dict[str, Any]]:
        rows = await PendingApproval.filter(session_id=session_id).using_db(self.db).all()
        return [dict((await database.get_approval(self.db, r.call_id)) or {}) for r in rows]


@pytest.fixture(params=["local", "remote"])
async def where(request: pytest.FixtureRequest, backend: Backend) -> AsyncIterator[Where]:
    if request.param == "remote":
        async with app_client(backend) as (client, connection, _):
            yield Where(connection, client)
        return
    async with in_process_store(backend) as connection:
        yield Where(connection, None)


class State(TypedDict):
    log: Annotated[list[Any], operator.add]


def config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def payment_graph(where: Where, calls: list[dict[str, Any]], *, crash_once: bool = False) -> Any:
    """START -> pay -> END; `pay` asks to send a payment and runs it once approved.
    With `crash_once`, the node's first run dies after the payment (before returning)."""
    crashes = [crash_once]

    async def send_payment(arguments: dict[str, Any]) -> dict[str, Any]:
        calls.append(arguments)
        return {"payment_id": f"p_{len(calls)}", "amount": arguments["amount"]}

    async def pay(state: State) -> dict[str, Any]:
        decision = ask_approval("send_payment", {"amount": 120}, reason="invoice 7")
        if not decision.approved:
            return {"log": [("refused", decision.message)]}
        receipt = await run_once(decision, send_payment)
        if crashes[0]:
            crashes[0] = False
            raise RuntimeError("the worker died after paying")
        return {"log": [("paid", receipt, decision.message)]}

    builder = StateGraph(State)
    builder.add_node("pay", pay)
    builder.add_edge(START, "pay")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=where.saver())


async def test_a_reviewer_edits_the_amount_and_the_tool_runs_once_with_it(where: Where):
    calls: list[dict[str, Any]] = []
    graph = payment_graph(where, calls)
    run = asyncio.create_task(
        run_with_approvals(graph, {"log": []}, config("pay-1"), client=where.client, timeout=30)
    )

    [asked] = await where.pending("pay-1")
    assert (asked["tool_name"], asked["arguments"], asked["reason"]) == (
        "send_payment",
        {"amount": 120},
        "invoice 7",
    )
    state = await graph.aget_state(config("pay-1"))
    [interrupt] = state.interrupts
    assert asked["call_id"] == approval_call_id("pay-1", interrupt.id)
    await asyncio.sleep(0.1)
    assert not run.done() and calls == []  # waiting for the decision
    await where.decide(
        asked["call_id"],
        "approved",
        decided_by="alice",
        message="max 100",
        arguments={"amount": 100},
    )

    final = await asyncio.wait_for(run, 30)
    assert calls == [{"amount": 100}]  # once, with the reviewer's edit
    receipt = {"payment_id": "p_1", "amount": 100}
    assert final == {"log": [("paid", receipt, "max 100")]}
    [approval] = await where.approvals("pay-1")
    assert approval["status"] == "executed"
    assert approval["result"] == receipt
    assert approval["edited_arguments"] == {"amount": 100}
    assert approval["arguments"] == {"amount": 120}

    # The node run again, with the same decision: the recorded result, no second call.
    decision = ApprovalDecision.from_approval(approval)
    assert decision.approved and decision.arguments == {"amount": 100}
    again = await run_once(decision, lambda arguments: calls.append(arguments), client=where.client)
    assert again == receipt
    assert calls == [{"amount": 100}]


async def test_a_node_that_dies_after_the_tool_gets_the_recorded_result_on_rerun(where: Where):
    calls: list[dict[str, Any]] = []
    graph = payment_graph(where, calls, crash_once=True)
    run = asyncio.create_task(
        run_with_approvals(graph, {"log": []}, config("pay-2"), client=where.client, timeout=30)
    )
    [asked] = await where.pending("pay-2")
    await where.decide(asked["call_id"], "approved", decided_by="alice")
    with pytest.raises(RuntimeError, match="died after paying"):
        await asyncio.wait_for(run, 30)
    assert calls == [{"amount": 120}]

    # Restarted (`input=None`: from the thread's checkpoint): LangGraph runs the node
    # again with the same decision; the payment is not made twice.
    final = await run_with_approvals(graph, None, config("pay-2"), client=where.client, timeout=5)
    assert calls == [{"amount": 120}]
    assert final == {"log": [("paid", {"payment_id": "p_1", "amount": 120}, None)]}
    [approval] = await where.approvals("pay-2")
    assert approval["call_id"] == asked["call_id"]
    assert approval["status"] == "executed"


async def test_a_run_that_stopped_waiting_finds_the_same_approval(where: Where):
    calls: list[dict[str, Any]] = []
    graph = payment_graph(where, calls)
    with pytest.raises(TimeoutError):
        await run_with_approvals(
            graph, {"log": []}, config("pay-3"), client=where.client, timeout=0.2
        )
    [asked] = await where.pending("pay-3")
    await where.decide(asked["call_id"], "approved", decided_by="bob")

    # Run again from the checkpoint: the same interrupt, the same call id, the stored
    # decision at once; no second approval.
    final = await run_with_approvals(graph, None, config("pay-3"), client=where.client, timeout=5)
    assert final == {"log": [("paid", {"payment_id": "p_1", "amount": 120}, None)]}
    assert calls == [{"amount": 120}]
    assert [a["call_id"] for a in await where.approvals("pay-3")] == [asked["call_id"]]


async def test_a_rejection_runs_nothing(where: Where):
    calls: list[dict[str, Any]] = []
    graph = payment_graph(where, calls)
    run = asyncio.create_task(
        run_with_approvals(graph, {"log": []}, config("pay-4"), client=where.client, timeout=30)
    )
    [asked] = await where.pending("pay-4")
    await where.decide(asked["call_id"], "rejected", decided_by="bob", message="not today")
    assert await asyncio.wait_for(run, 30) == {"log": [("refused", "not today")]}
    assert calls == []
    [approval] = await where.approvals("pay-4")
    assert approval["status"] == "rejected"

    decision = ApprovalDecision.from_approval(approval)
    with pytest.raises(ApprovalRejectedError, match="not today") as raised:
        await run_once(decision, lambda arguments: calls.append(arguments), client=where.client)
    assert raised.value.decision is decision
    assert calls == []


async def test_parallel_asks_in_one_step_each_get_their_own_approval(where: Where):
    calls: list[tuple[str, dict[str, Any]]] = []

    def node(tool: str, arguments: dict[str, Any]) -> Any:
        async def ask(state: State) -> dict[str, Any]:
            decision = ask_approval(tool, arguments)
            if not decision.approved:
                return {"log": [(tool, "refused", decision.message)]}

            def tool_fn(args: dict[str, Any]) -> str:  # a sync tool
                calls.append((tool, args))
                return f"{tool} done"

            return {"log": [(tool, await run_once(decision, tool_fn))]}

        return ask

    builder = StateGraph(State)
    builder.add_node("pay", node("send_payment", {"amount": 5}))
    builder.add_node("mail", node("send_email", {"to": "ann@example.com"}))
    builder.add_node("ship", node("ship_order", {"order": 7}))
    for name in ("pay", "mail", "ship"):
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    graph = builder.compile(checkpointer=where.saver())

    run = asyncio.create_task(
        run_with_approvals(graph, {"log": []}, config("fan"), client=where.client, timeout=30)
    )
    asked = {a["tool_name"]: a["call_id"] for a in await where.pending("fan", 3)}
    assert len(set(asked.values())) == 3
    await where.decide(asked["send_payment"], "approved", arguments={"amount": 4})
    await where.decide(asked["send_email"], "rejected", message="no mail")
    await asyncio.sleep(0.1)
    assert not run.done()  # the third is still undecided
    await where.decide(asked["ship_order"], "approved")

    final = await asyncio.wait_for(run, 30)
    assert sorted(final["log"]) == [
        ("send_email", "refused", "no mail"),
        ("send_payment", "send_payment done"),
        ("ship_order", "ship_order done"),
    ]
    assert sorted(calls) == [("send_payment", {"amount": 4}), ("ship_order", {"order": 7})]
    statuses = {a["tool_name"]: a["status"] for a in await where.approvals("fan")}
    assert statuses == {
        "send_payment": "executed",
        "send_email": "rejected",
        "ship_order": "executed",
    }


async def test_two_asks_in_one_node_are_two_approvals(where: Where):
    calls: list[dict[str, Any]] = []

    async def transfer(state: State) -> dict[str, Any]:
        results = []
        for amount in (10, 20):
            decision = ask_approval("send_payment", {"amount": amount})
            results.append(await run_once(decision, lambda a: calls.append(a) or a["amount"]))
        return {"log": results}

    builder = StateGraph(State)
    builder.add_node("transfer", transfer)
    builder.add_edge(START, "transfer")
    builder.add_edge("transfer", END)
    graph = builder.compile(checkpointer=where.saver())

    run = asyncio.create_task(
        run_with_approvals(graph, {"log": []}, config("two"), client=where.client, timeout=30)
    )
    [first] = await where.pending("two")
    await where.decide(first["call_id"], "approved")
    for _ in range(400):
        if [a for a in await where.pending("two") if a["call_id"] != first["call_id"]]:
            break
        await asyncio.sleep(0.025)
    [second] = await where.pending("two")
    assert second["call_id"] != first["call_id"]
    assert second["arguments"] == {"amount": 20}
    await where.decide(second["call_id"], "approved")

    assert await asyncio.wait_for(run, 30) == {"log": [10, 20]}
    assert calls == [{"amount": 10}, {"amount": 20}]  # the first not run again


async def test_a_claim_left_by_a_dead_worker_is_taken_over_after_its_lease(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
):
    # In-process: a worker claimed the approved call and died (its claim stays until
    # the lease ends); the graph run again waits that out, then runs the tool.
    from agent_runtime.config import get_settings
    from agent_runtime.errors import ConflictError

    monkeypatch.setenv("AGENT_RUNTIME__CLAIM_LEASE_SECONDS", "0.5")
    get_settings.cache_clear()
    await database.init_database(backend.url)
    try:
        db = database.get_connection()
        await truncate(db)
        where = Where(db, None)
        calls: list[dict[str, Any]] = []
        graph = payment_graph(where, calls)
        with pytest.raises(TimeoutError):
            await run_with_approvals(graph, {"log": []}, config("dead"), timeout=0.1)
        [asked] = await where.pending("dead")
        await where.decide(asked["call_id"], "approved")
        await database.claim_approval(db, asked["call_id"], claimed_by="dead-worker")

        with pytest.raises(ConflictError):  # the dead worker's lease still holds
            await run_with_approvals(graph, None, config("dead"), timeout=5)
        assert calls == []
        await asyncio.sleep(0.6)
        final = await run_with_approvals(graph, None, config("dead"), timeout=5)
        assert final == {"log": [("paid", {"payment_id": "p_1", "amount": 120}, None)]}
        assert calls == [{"amount": 120}]
        [approval] = await where.approvals("dead")
        assert approval["status"] == "executed"
    finally:
        await database.close_db()
        monkeypatch.delenv("AGENT_RUNTIME__CLAIM_LEASE_SECONDS")
        get_settings.cache_clear()
