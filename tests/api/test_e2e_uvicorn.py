"""End to end over real HTTP: a uvicorn server process on each backend.

What a user does with a running service (save a conversation, record and decide a
tool approval, write conditionally, restart the service) and a bounded schemathesis
run against the served OpenAPI document.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx

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
            # An endless stream and a wait of up to 60 s: tests/api/test_events_api.py and
            # test_approval_runs_api.py cover them.
            "--exclude-path-regex",
            r"^/(events|approvals/\{call_id\}/wait)$",
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


def test_large_bodies_on_one_keep_alive_connection_do_not_leak_a_transaction(server):
    # uvicorn pauses reading a large body and resumes in the context that read it;
    # the next request on the connection must not inherit that request's transaction.
    big = [{"role": "user", "content": f"message {i} " + "x" * 200} for i in range(1000)]

    with httpx.Client(base_url=server.url, timeout=10) as http:  # one connection
        statuses = []
        for n in range(6):
            statuses.append(http.post("/sessions/big", json=big + big[: n % 2]).status_code)
        loaded = http.get("/sessions/big")
        concurrent_ok = [http.get("/health/ready").status_code for _ in range(3)]

    assert statuses == [200] * 6, server.errors()[-3000:]
    assert loaded.status_code == 200 and len(loaded.json()["messages"]) == 1001
    assert concurrent_ok == [200] * 3
    assert "released back to the pool" not in server.errors()
    assert "no such savepoint" not in server.errors()
