"""A resumer killed mid-run, then another: the approved tool call runs once.

End to end, as the README's "Human in the loop" crash table describes it: a live
uvicorn on the backend (with a short claim lease, AGENT_RUNTIME__CLAIM_LEASE_SECONDS),
this process runs the agent until it pauses (the approval recorded, the `RunState`
stored) and approves the call through the REST API; the run is then resumed by
separate processes (tests/integrations/resume_worker.py, over REST):

1. worker-1 claims the call and starts the tool, which blocks before its side
   effect; it is SIGKILLed there (after claiming, before reporting).
2. While worker-1's lease holds, no one else may run the call: a resume gets the
   claim refused (409) and runs nothing.
3. Once the lease is over, worker-2 takes the claim over (recorded as a re-claim),
   runs the tool, reports it `executed` and finishes the run.
4. After the report, nothing runs it again.

What "exactly once" means here: the tool's side effect is a line in the `effects`
file. worker-1 was killed before writing it, so the only line is worker-2's: the
effect happened once. Had worker-1 been killed *after* the effect but before its
report, worker-2 would have run the tool again after the lease (the service cannot
tell the two cases apart): that is why the README asks for idempotent tools (e.g.
the `call_id` as an idempotency key) whenever a tool may have run before a crash.
What the service guarantees is that two resumers never hold the call at once,
and that a reported call never runs again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("agents")

from agents import Runner

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.errors import ConflictError
from agent_runtime.integrations.openai_agents import (
    AgentRuntimeSession,
    load_run_state,
    resume_run,
    submit_interruptions,
)
from tests.fixtures.backends import ROOT, Backend
from tests.fixtures.servers import start_uvicorn
from tests.integrations.conftest import until
from tests.integrations.resume_worker import ANSWER, first_turn, weather_agent

LEASE_SECONDS = 3.0
STEP_TIMEOUT = 20.0


def start_worker(url: str, session_id: str, name: str, workdir: Path) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integrations.resume_worker",
            url,
            session_id,
            name,
            str(workdir),
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_killed_resumer_leaves_the_call_to_the_next_after_its_lease(
    backend: Backend, tmp_path: Path
):
    server = start_uvicorn(
        backend, tmp_path, env={"AGENT_RUNTIME__CLAIM_LEASE_SECONDS": str(LEASE_SECONDS)}
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    # Ids of their own: the database is shared with other tests and not emptied here.
    session_id = f"restart-{backend.name}-{time.time_ns()}"
    call_id = f"call-{session_id}"
    effects = workdir / "effects"
    try:
        async with AsyncAgentRuntimeClient(server.url) as client:
            session = AgentRuntimeSession(session_id, client=client)

            # The run pauses: the approval is recorded, the RunState stored.
            paused = await Runner.run(
                weather_agent(first_turn(call_id), workdir, "pauser"),
                "Weather in Paris?",
                session=session,
            )
            assert await submit_interruptions(paused, session) == [call_id]
            assert (await client.get_approval(call_id)).status == "pending"
            assert await load_run_state(session) is not None
            await client.decide(call_id, "approved", decided_by="alice")

            # 1. worker-1 claims the call and blocks inside the tool: SIGKILL it there.
            (workdir / "block-worker-1").touch()
            worker_1 = start_worker(server.url, session_id, "worker-1", workdir)
            try:
                await until(
                    lambda: (workdir / "started-worker-1").exists() or worker_1.poll() is not None,
                    "worker-1 to start the tool",
                )
                assert worker_1.poll() is None, worker_1.communicate()
            finally:
                worker_1.send_signal(signal.SIGKILL)
                worker_1.wait()
            assert worker_1.returncode == -signal.SIGKILL
            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("claimed", "worker-1")
            assert approval.claim_expires_at is not None
            assert not effects.exists()  # killed before the side effect

            # 2. While its lease holds, no one runs the call.
            tester = weather_agent(first_turn(call_id), workdir, "tester")
            assert await resume_run(tester, session, timeout=5, claimed_by="tester") is None
            assert not (workdir / "started-tester").exists()
            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("claimed", "worker-1")

            # 3. After the lease, worker-2 takes the claim over and runs the tool once.
            assert approval.claim_expires_at is not None
            left = approval.claim_expires_at.timestamp() - time.time()
            await asyncio.sleep(max(0.0, left) + 0.3)
            worker_2 = start_worker(server.url, session_id, "worker-2", workdir)
            try:
                out, err = await asyncio.to_thread(worker_2.communicate, timeout=STEP_TIMEOUT)
            finally:
                if worker_2.poll() is None:
                    worker_2.kill()
                    worker_2.wait()
            assert worker_2.returncode == 0, err
            assert out.splitlines() == ["finished", ANSWER]
            assert effects.read_text().splitlines() == ["Paris by worker-2"]  # exactly once

            approval = await client.get_approval(call_id)
            assert (approval.status, approval.claimed_by) == ("executed", "worker-2")
            assert approval.result == "18C, sunny in Paris"
            claims = [
                e for e in await client.approval_events(call_id) if e.type == "approval.claimed"
            ]
            assert [(e.actor, e.data.get("reclaimed")) for e in claims] == [
                ("worker-1", False),
                ("worker-2", True),
            ]
            assert await load_run_state(session) is None

            # 4. Reported: no resumer runs it again.
            assert await resume_run(tester, session, timeout=5) is None
            with pytest.raises(ConflictError):
                await client.claim(call_id, claimed_by="late")
            assert effects.read_text().splitlines() == ["Paris by worker-2"]
            assert not (workdir / "started-tester").exists()
    finally:
        server.stop()
