"""A LangGraph worker killed after claiming an approved call, then another: the
tool runs once, with the reviewer's edit.

End to end, as test_openai_agents_restart.py does for the Agents SDK: a live uvicorn
on the backend (with a short claim lease, AGENT_RUNTIME__CLAIM_LEASE_SECONDS), and a
real compiled graph run by separate processes (tests/integrations/langgraph_worker.py):
`run_with_approvals` with the approvals over REST (`client=`) and the checkpoints in
the same database (`AgentRuntimeSaver` in the worker), so another process resumes
the same thread. The graph's node asks `ask_approval("send_payment", {"amount": 120})`
and pays with `run_once`.

1. worker-a runs the graph until it pauses; the approval is recorded and this test,
   as a reviewer over REST, approves it with the amount edited to 95.
2. worker-a resumes, claims the call and starts the tool (with 95), which blocks
   before its side effect; it is SIGKILLed there (after claiming, before reporting).
3. While worker-a's lease holds, worker-b resuming the thread is refused
   (`ConflictError` from `run_once`) and runs nothing.
4. Once the lease is over, worker-b resumes the thread again: it takes the claim
   over (recorded as a re-claim), runs the tool once with 95, reports it `executed`
   and the graph ends with the recorded result in its state.
5. After the report, no one may claim the call again.

The side effect is a line in the `effects` file: worker-a was killed before writing
it, so the one line is worker-b's (see test_openai_agents_restart.py for what
"exactly once" means when a worker dies after the effect but before its report).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.errors import ConflictError
from tests.fixtures.backends import ROOT, Backend
from tests.fixtures.servers import start_uvicorn
from tests.integrations.conftest import until

LEASE_SECONDS = 4.0
STEP_TIMEOUT = 20.0


class Worker:
    """A langgraph_worker process: started ahead of time, it waits (`ready`) until
    `go()`; `outcome()` is the JSON line it prints at the end."""

    def __init__(
        self, server_url: str, backend: Backend, thread_id: str, name: str, workdir: Path, mode: str
    ) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
        self.name = name
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integrations.langgraph_worker",
                server_url,
                backend.url,
                thread_id,
                name,
                str(workdir),
                mode,
            ],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def line(self) -> str:
        assert self.process.stdout is not None
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.process.stdout.readline), STEP_TIMEOUT
            )
        except TimeoutError:
            pytest.fail(f"{self.name} printed nothing in {STEP_TIMEOUT}s")

    async def go(self) -> None:
        """Wait until it is ready, then let it run the graph."""
        ready = await self.line()
        assert ready == "ready\n", self.failure(ready)
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    async def outcome(self) -> dict[str, Any]:
        line = await self.line()
        assert line, self.failure(line)
        await asyncio.to_thread(self.process.wait, STEP_TIMEOUT)
        assert self.process.returncode == 0, self.failure(line)
        return dict(json.loads(line))

    def failure(self, line: str) -> str:
        """What the process printed, once it has ended (killed if it had not)."""
        self.stop()
        assert self.process.stderr is not None
        return f"{self.name} printed {line!r}, exit {self.process.returncode}:\n" + (
            self.process.stderr.read()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """Stop it; what it wrote to stderr goes to the test's captured output."""
        self.stop()
        if self.process.stderr is not None and not self.process.stderr.closed:
            print(f"--- {self.name} (exit {self.process.returncode}) stderr:")
            print(self.process.stderr.read())
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


async def pending_approval(client: AsyncAgentRuntimeClient, thread_id: str) -> Any:
    """The thread's one pending approval, once it is there (as a reviewer sees it)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while not (page := await client.session_approvals(thread_id)).items:
        if time.monotonic() > deadline:
            pytest.fail(f"no approval asked in {thread_id!r}")
        await asyncio.sleep(0.05)
    [approval] = page.items
    return approval


async def test_a_killed_worker_leaves_the_edited_call_to_the_next_after_its_lease(
    backend: Backend, tmp_path: Path
):
    server = start_uvicorn(
        backend, tmp_path, env={"AGENT_RUNTIME__CLAIM_LEASE_SECONDS": str(LEASE_SECONDS)}
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    # A thread of its own: the database is shared with other tests and not emptied here.
    thread_id = f"lg-restart-{backend.name}-{time.time_ns()}"
    effects = workdir / "effects"
    workers: list[Worker] = []

    def start(name: str, mode: str) -> Worker:
        workers.append(Worker(server.url, backend, thread_id, name, workdir, mode))
        return workers[-1]

    try:
        async with AsyncAgentRuntimeClient(server.url) as client:
            # 1. worker-a runs the graph until it pauses; a reviewer edits the amount.
            (workdir / "block-worker-a").touch()
            worker_a = start("worker-a", "start")
            await worker_a.go()
            refused = start("worker-b", "resume")  # ready before it is needed
            asked = await pending_approval(client, thread_id)
            assert (asked.tool_name, asked.arguments, asked.reason) == (
                "send_payment",
                {"amount": 120},
                "invoice 7",
            )
            call_id = asked.call_id
            assert call_id.startswith("langgraph-")
            await client.decide(
                call_id, "approved", decided_by="alice", message="max 95", arguments={"amount": 95}
            )

            # 2. worker-a claims the call, starts the tool with the edit: SIGKILL it there.
            started_a = workdir / "started-worker-a"
            await until(
                lambda: started_a.exists() or worker_a.process.poll() is not None,
                "worker-a to start the tool",
            )
            assert worker_a.process.poll() is None, worker_a.failure("")
            worker_a.process.send_signal(signal.SIGKILL)
            worker_a.process.wait()
            assert worker_a.process.returncode == -signal.SIGKILL
            assert json.loads(started_a.read_text()) == {"amount": 95}
            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("claimed", "worker-a")
            assert approval.claim_expires_at is not None
            assert not effects.exists()  # killed before the side effect

            # 3. While its lease holds, worker-b is refused and runs nothing.
            left = approval.claim_expires_at.timestamp() - time.time()
            assert left > 1.0, f"too slow: {left:.2f}s of worker-a's lease left to try worker-b"
            await refused.go()
            outcome = await refused.outcome()
            assert outcome["outcome"] == "refused", outcome
            assert (outcome["current"]["status"], outcome["current"]["claimed_by"]) == (
                "claimed",
                "worker-a",
            )
            assert not (workdir / "started-worker-b").exists()
            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("claimed", "worker-a")

            # 4. After the lease, worker-b takes the claim over and runs the tool once.
            worker_b = start("worker-b", "resume")  # gets ready during the lease
            assert approval.claim_expires_at is not None
            left = approval.claim_expires_at.timestamp() - time.time()
            await asyncio.sleep(max(0.0, left) + 0.3)
            await worker_b.go()
            outcome = await worker_b.outcome()
            receipt = {"payment_id": "pay-by-worker-b", "amount": 95}
            final = {"log": [{"paid": receipt, "note": "max 95"}]}
            assert outcome == {"outcome": "finished", "final": final, "state": final, "next": []}
            assert effects.read_text().splitlines() == ["95 by worker-b"]  # exactly once

            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("executed", "worker-b")
            assert approval.result == receipt
            assert (approval.arguments, approval.edited_arguments) == (
                {"amount": 120},
                {"amount": 95},
            )
            claims = [
                e for e in await client.approval_events(call_id) if e.type == "approval.claimed"
            ]
            assert [(e.actor, e.data.get("reclaimed")) for e in claims] == [
                ("worker-a", False),
                ("worker-b", True),
            ]

            # 5. Reported: no one claims it again.
            with pytest.raises(ConflictError) as late:
                await client.claim(call_id, claimed_by="late")
            assert (late.value.current or {}).get("status") == "executed"
            assert effects.read_text().splitlines() == ["95 by worker-b"]
    finally:
        for worker in workers:
            worker.close()
        server.stop()
