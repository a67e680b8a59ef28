"""End to end over real HTTP: a uvicorn server process on each backend.

What a user does with a running service (save a conversation, record and decide a
tool approval, write conditionally, restart the service) and a bounded schemathesis
run against the served OpenAPI document.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.backends import ROOT, Backend

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0

CONVERSATION = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C, sunny"},
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """One `uvicorn agent_runtime.main:app` process; its output goes to files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return (
            f"--- server stdout ---\n{self.stdout.read_text(errors='replace')}"
            f"--- server stderr ---\n{self.errors()}"
        )

    def errors(self) -> str:
        """uvicorn's and the app's log (tracebacks included); access lines go to stdout."""
        return self.stderr.read_text(errors="replace")

    def stop(self) -> bool:
        """SIGTERM (uvicorn's graceful shutdown), kill after SHUTDOWN_TIMEOUT.

        True if the process ended on SIGTERM, after completing the app's shutdown
        (uvicorn re-raises the signal once it has shut down, so the exit code is -15).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return False
        return self.process.returncode in (0, -signal.SIGTERM) and (
            "Application shutdown complete" in self.errors()
        )


def _start_server(backend: Backend, log_dir: Path) -> LiveServer:
    port = _free_port()
    # Only the database URL comes from the test: no API key or other setting leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env["AGENT_RUNTIME__DB_URL"] = backend.url
    name = f"uvicorn-{port}"
    stdout, stderr = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "agent_runtime.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    server = LiveServer(process, f"http://127.0.0.1:{port}", stdout, stderr)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"uvicorn not ready within {STARTUP_TIMEOUT:.0f} s\n{server.output()}")


@pytest.fixture
def start_server(backend: Backend, tmp_path: Path) -> Iterator[Callable[[], LiveServer]]:
    """Starts uvicorn servers on `backend`'s migrated database; all are stopped at teardown."""
    started: list[LiveServer] = []

    def start() -> LiveServer:
        server = _start_server(backend, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[[], LiveServer]) -> LiveServer:
    """A running uvicorn server, ready (`/health/ready` answered 200); base URL: `server.url`."""
    return start_server()


def test_a_conversation_and_its_approval_survive_a_restart_of_the_server(start_server):
    session_id, call_id = f"s-{uuid.uuid4()}", f"call-{uuid.uuid4()}"
    server = start_server()

    with httpx.Client(base_url=server.url, timeout=10) as http:
        # The agent loop saves the first turn, then the whole conversation, each time
        # conditionally on the version it saved last.
        first_turn = http.post(f"/sessions/{session_id}", json=CONVERSATION[:1])
        assert first_turn.status_code == 200, first_turn.text
        stale_etag = first_turn.headers["etag"]
        saved = http.post(
            f"/sessions/{session_id}", json=CONVERSATION, headers={"If-Match": stale_etag}
        )
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"status": "saved"}
        etag = saved.headers["etag"]
        assert etag != stale_etag

        loaded = http.get(f"/sessions/{session_id}")
        assert loaded.status_code == 200
        assert loaded.json()["session_id"] == session_id
        assert loaded.json()["messages"] == CONVERSATION
        assert loaded.headers["etag"] == etag

        # The assistant's tool call waits for a human.
        created = http.post(
            "/approvals",
            json={
                "session_id": session_id,
                "call_id": call_id,
                "tool_name": "delete_file",
                "arguments": {"path": "/tmp/report.csv"},
                "reason": "destructive tool",
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "pending"
        inbox = http.get(f"/sessions/{session_id}/approvals")
        assert inbox.status_code == 200
        assert [a["call_id"] for a in inbox.json()["items"]] == [call_id]

        approved = http.post(
            f"/approvals/{call_id}/decision", json={"status": "approved", "decided_by": "alice"}
        )
        assert approved.status_code == 200, approved.text
        decision = approved.json()
        assert decision["status"] == "approved"
        assert decision["decided_by"] == "alice"
        assert decision["decided_at"] is not None

        overruled = http.post(
            f"/approvals/{call_id}/decision", json={"status": "rejected", "decided_by": "bob"}
        )
        assert overruled.status_code == 409
        assert overruled.json()["error"]["code"] == "conflict"

        # A writer still holding the first version must not overwrite the conversation.
        lost_update = http.post(
            f"/sessions/{session_id}",
            json=[{"role": "user", "content": "overwrite"}],
            headers={"If-Match": stale_etag},
        )
        assert lost_update.status_code == 412
        assert lost_update.json()["error"]["code"] == "precondition_failed"
        unchanged = http.get(f"/sessions/{session_id}")
        assert unchanged.json()["messages"] == CONVERSATION
        assert unchanged.headers["etag"] == etag

    assert server.stop(), f"no graceful shutdown on SIGTERM\n{server.output()}"
    restarted = start_server()

    with httpx.Client(base_url=restarted.url, timeout=10) as http:
        reloaded = http.get(f"/sessions/{session_id}")
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["messages"] == CONVERSATION
        assert reloaded.headers["etag"] == etag
        approval = http.get(f"/approvals/{call_id}")
        assert approval.status_code == 200, approval.text
        assert approval.json() == decision
        assert http.get(f"/sessions/{session_id}/approvals").json()["items"] == []


def test_generated_requests_never_get_a_server_error_or_an_undeclared_response(server, tmp_path):
    """Schemathesis over every operation of the served /openapi.json: examples, coverage,
    fuzzing (valid and invalid inputs) and stateful phases, bounded and seeded."""
    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            ",".join(checks),
            "--max-examples",
            "20",
            "--seed",
            "1",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            # Reproductions must show the real values ("session_id" would be "[Filtered]").
            "--output-sanitize",
            "false",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, (
        f"schemathesis failed:\n{result.stdout}\n{result.stderr}\n"
        f"--- server stderr (last 20000 characters) ---\n{server.errors()[-20000:]}"
    )
