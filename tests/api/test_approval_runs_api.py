"""After the decision, over REST: wait for it, claim the call, report the outcome, and
read the audit trail."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime.schemas.approvals import ApprovalRead

APPROVAL = {
    "session_id": "s1",
    "call_id": "call_1",
    "tool_name": "delete_file",
    "arguments": {"path": "/tmp/x"},
}
READ_FIELDS = set(ApprovalRead.model_fields)


async def create(client, call_id="call_1"):
    response = await client.post("/approvals", json={**APPROVAL, "call_id": call_id})
    assert response.status_code == 201, response.text
    return response.json()


async def decide(client, status="approved", call_id="call_1", **extra):
    return await client.post(f"/approvals/{call_id}/decision", json={"status": status, **extra})


async def claim(client, call_id="call_1", **body):
    return await client.post(f"/approvals/{call_id}/claim", json=body or None)


async def claimed(client, **body):
    await create(client)
    assert (await decide(client)).status_code == 200
    response = await claim(client, **body)
    assert response.status_code == 200, response.text
    return response.json()


async def report(client, token, status="executed", result=None, call_id="call_1"):
    body = {"claim_token": token, "status": status, "result": result}
    return await client.post(f"/approvals/{call_id}/result", json=body)


async def test_a_decision_carries_a_message_and_edited_arguments(client):
    created = await create(client)

    response = await decide(
        client, decided_by="alice", message="the draft only", arguments={"path": "/tmp/draft"}
    )

    body = response.json()
    assert set(created) == set(body) == READ_FIELDS
    assert response.status_code == 200
    assert (body["status"], body["message"]) == ("approved", "the draft only")
    assert body["edited_arguments"] == {"path": "/tmp/draft"}
    assert body["arguments"] == {"path": "/tmp/x"}
    assert (await client.get("/approvals/call_1")).json() == body


@pytest.mark.parametrize("status", ["rejected", "cancelled"])
async def test_edited_arguments_are_422_unless_approving_and_change_nothing(client, status):
    await create(client)

    response = await decide(client, status, arguments={"path": "/tmp/other"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    stored = (await client.get("/approvals/call_1")).json()
    assert (stored["status"], stored["edited_arguments"]) == ("pending", None)
    events = (await client.get("/approvals/call_1/events")).json()
    assert [e["type"] for e in events] == ["approval.created"]


async def test_a_claim_gives_a_token_once_then_409_with_the_current_claim(client):
    first = await claimed(client, claimed_by="worker-1")

    again = await claim(client, claimed_by="worker-2")

    assert set(first) == READ_FIELDS | {"claim_token"}
    assert (first["status"], first["claimed_by"]) == ("claimed", "worker-1")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "conflict"
    assert (error["current"]["status"], error["current"]["claimed_by"]) == ("claimed", "worker-1")
    assert "claim_token" not in error["current"] and "claim_token_hash" not in error["current"]
    assert first["claim_token"] not in again.text


async def test_a_claim_on_a_pending_approval_is_409(client):
    await create(client)

    response = await claim(client)

    assert response.status_code == 409
    assert response.json()["error"]["current"]["status"] == "pending"
    assert (await client.get("/approvals/call_1")).json()["status"] == "pending"


async def test_a_claim_on_an_unknown_approval_is_404(client):
    assert (await claim(client, "nope")).status_code == 404


async def test_a_claim_body_with_unknown_fields_is_422(client):
    await create(client)
    await decide(client)

    assert (await claim(client, claimed_by="w", lease=5)).status_code == 422
    assert (await client.get("/approvals/call_1")).json()["status"] == "approved"


async def test_the_holder_reports_the_result_then_every_claim_is_409_with_it(client):
    token = (await claimed(client, claimed_by="worker-1"))["claim_token"]

    reported = await report(client, token, "executed", {"deleted": 1})
    again = await report(client, token, "executed", {"deleted": 1})
    late_claim = await claim(client)

    assert reported.status_code == 200, reported.text
    assert set(reported.json()) == READ_FIELDS
    assert (reported.json()["status"], reported.json()["result"]) == ("executed", {"deleted": 1})
    assert reported.json()["finished_at"] is not None
    assert (again.status_code, again.json()) == (200, reported.json())
    assert late_claim.status_code == 409
    current = late_claim.json()["error"]["current"]
    assert (current["status"], current["result"]) == ("executed", {"deleted": 1})


async def test_a_different_report_after_the_outcome_is_409(client):
    token = (await claimed(client))["claim_token"]
    await report(client, token, "executed", {"deleted": 1})

    response = await report(client, token, "failed", {"deleted": 1})

    assert response.status_code == 409
    assert (await client.get("/approvals/call_1")).json()["status"] == "executed"


async def test_a_report_with_a_wrong_token_is_409_and_changes_nothing(client):
    first = await claimed(client)

    response = await report(client, "not-the-token")

    assert response.status_code == 409
    assert response.json()["error"]["current"]["status"] == "claimed"
    stored = (await client.get("/approvals/call_1")).json()
    assert stored == {k: v for k, v in first.items() if k != "claim_token"}


@pytest.mark.parametrize(
    "body",
    [
        {"status": "approved"},
        {"status": "done"},
        {"status": None},
        {},
        {"status": "executed", "extra": 1},
        {"status": "executed", "claim_token": "x" * 201},
    ],
)
async def test_bad_reports_are_422(client, body):
    token = (await claimed(client))["claim_token"]

    response = await client.post("/approvals/call_1/result", json={"claim_token": token, **body})

    assert response.status_code == 422
    assert (await client.get("/approvals/call_1")).json()["status"] == "claimed"


async def test_a_report_on_an_unknown_approval_is_404(client):
    assert (await report(client, "token", call_id="nope")).status_code == 404


@pytest.mark.parametrize("result", ["done", "[1]"])
async def test_a_string_result_is_stored_as_sent(client, result):
    token = (await claimed(client))["claim_token"]

    response = await report(client, token, "executed", result)

    assert response.status_code == 200
    assert (await client.get("/approvals/call_1")).json()["result"] == result


async def test_the_claim_token_is_shown_only_by_the_claim(client):
    token = (await claimed(client))["claim_token"]
    await report(client, token, "failed", {"error": "disk full"})

    for path in ("/approvals/call_1", "/approvals", "/approvals/call_1/events"):
        response = await client.get(path)
        assert response.status_code == 200
        assert token not in response.text, path
        assert "claim_token" not in response.text, path


async def test_the_audit_trail_is_oldest_first(client):
    token = (await claimed(client, claimed_by="worker-1"))["claim_token"]
    await report(client, token, "executed", {"deleted": 1})
    assert (await client.delete("/approvals/call_1")).status_code == 204

    response = await client.get("/approvals/call_1/events")

    events = response.json()
    assert response.status_code == 200
    assert [e["type"] for e in events] == [
        "approval.created",
        "approval.decided",
        "approval.claimed",
        "approval.executed",
        "approval.deleted",
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert set(events[0]) == {"id", "type", "session_id", "call_id", "actor", "data", "created_at"}
    assert events[2]["actor"] == "worker-1"
    assert events[3]["data"] == {"result": {"deleted": 1}}


async def test_the_audit_trail_of_an_unknown_call_is_404(client):
    assert (await client.get("/approvals/nope/events")).status_code == 404


@pytest.mark.parametrize("seconds", ["0", "61", "abc", "-1"])
async def test_a_wait_with_a_bad_timeout_is_422(client, seconds):
    await create(client)

    response = await client.get("/approvals/call_1/wait", params={"timeout": seconds})

    assert response.status_code == 422


async def test_a_wait_on_an_unknown_approval_is_404(client):
    response = await client.get("/approvals/nope/wait", params={"timeout": 1})

    assert response.status_code == 404


async def test_a_wait_on_a_decided_approval_answers_at_once(client):
    await create(client)
    decided = (await decide(client, "rejected", message="no")).json()
    start = time.monotonic()

    response = await client.get("/approvals/call_1/wait", params={"timeout": 30})

    assert (response.status_code, response.json()) == (200, decided)
    assert time.monotonic() - start < 30


async def test_a_wait_answers_pending_at_its_timeout(client):
    await create(client)

    response = await client.get("/approvals/call_1/wait", params={"timeout": 0.2})

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


async def test_a_wait_answers_when_the_decision_lands(client):
    await create(client)
    start = time.monotonic()
    waiting = asyncio.create_task(client.get("/approvals/call_1/wait", params={"timeout": 30}))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    decided = await decide(client, "approved", decided_by="alice")

    response = await waiting
    assert (response.status_code, response.json()) == (200, decided.json())
    assert time.monotonic() - start < 30
