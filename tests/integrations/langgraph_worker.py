"""A LangGraph worker process for test_langgraph_restart.py (not a test module).

``python -m tests.integrations.langgraph_worker URL DB_URL THREAD_ID NAME WORKDIR MODE``
runs the payment graph of thread THREAD_ID with `run_with_approvals` (`claimed_by=NAME`):
MODE ``start`` from its input, ``resume`` from the thread's checkpoint (input None).
The approvals go to the agent-runtime at URL over REST (`client=`); the checkpoints
to the same database, in this process (`AgentRuntimeSaver` after
`init_database(DB_URL)`), so that another process resumes the same thread.

The process first prints ``ready`` (imports done, database configured), then waits for
a line on stdin before it runs the graph: the test starts it ahead of time and lets
it go when it should run. It prints one JSON line, its outcome, and exits 0:
``{"outcome": "finished", "final": ..., "state": ..., "next": [...]}``, or
``{"outcome": "refused", "current": ...}`` when `run_once` raised `ConflictError`
(another worker's claim holds its lease).

The tool writes ``WORKDIR/started-NAME`` (the arguments it got, as JSON) when it
begins (the call is then claimed: the claim comes before the run), blocks for ever
if ``WORKDIR/block-NAME`` exists (the test SIGKILLs the process there), then records
its side effect: a line ``AMOUNT by NAME`` appended to ``WORKDIR/effects``. A
process killed while blocked never did it.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.errors import ConflictError
from agent_runtime.integrations.langgraph import (
    AgentRuntimeSaver,
    ask_approval,
    run_once,
    run_with_approvals,
)
from agent_runtime.service_api import close_db, init_database

AMOUNT = 120  # what the node asks to pay (the reviewer may edit it)


class State(TypedDict):
    log: Annotated[list[Any], operator.add]


def payment_graph(workdir: Path, name: str) -> Any:
    """START -> pay -> END: `pay` asks to send a payment, and sends it once approved."""

    def send_payment(arguments: dict[str, Any]) -> dict[str, Any]:
        started = workdir / f"started-{name}"
        started.with_suffix(".tmp").write_text(json.dumps(arguments))
        started.with_suffix(".tmp").replace(started)  # whole when it shows (the test reads it)
        while (workdir / f"block-{name}").exists():
            time.sleep(0.05)
        with (workdir / "effects").open("a") as effects:
            effects.write(f"{arguments['amount']} by {name}\n")
        return {"payment_id": f"pay-by-{name}", "amount": arguments["amount"]}

    async def pay(state: State) -> dict[str, Any]:
        decision = ask_approval("send_payment", {"amount": AMOUNT}, reason="invoice 7")
        if not decision.approved:
            return {"log": [{"refused": decision.message}]}
        receipt = await run_once(decision, send_payment)
        return {"log": [{"paid": receipt, "note": decision.message}]}

    builder = StateGraph(State)
    builder.add_node("pay", pay)
    builder.add_edge(START, "pay")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=AgentRuntimeSaver())


async def main(url: str, db_url: str, thread_id: str, name: str, workdir: Path, mode: str) -> None:
    await init_database(db_url)
    try:
        graph = payment_graph(workdir, name)
        config: Any = {"configurable": {"thread_id": thread_id}}
        async with AsyncAgentRuntimeClient(url) as client:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            try:
                final = await run_with_approvals(
                    graph,
                    {"log": []} if mode == "start" else None,
                    config,
                    client=client,
                    timeout=60,
                    claimed_by=name,
                )
            except ConflictError as exc:
                outcome: dict[str, Any] = {"outcome": "refused", "current": exc.current}
            else:
                state = await graph.aget_state(config)
                outcome = {
                    "outcome": "finished",
                    "final": final,
                    "state": state.values,
                    "next": list(state.next),
                }
        print(json.dumps(outcome, default=str), flush=True)
    finally:
        await close_db()


if __name__ == "__main__":
    url, db_url, thread_id, name, workdir, mode = sys.argv[1:]
    asyncio.run(main(url, db_url, thread_id, name, Path(workdir), mode))
