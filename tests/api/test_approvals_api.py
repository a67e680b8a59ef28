"""The approvals inbox: record, list, decide (compare-and-set), delete."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

APPROVAL = {
    "session_id": "s1",
    "call_id": "call_1",
    "tool_name": "delete_file",
    "arguments": {"path": "/tmp/x"},
    "reason": "destructive",
}


async def create(client, **overrides):
    return await client.post("/approvals", json={**APPROVAL, **overrides})


async def test_create_is_201_then_200_for_the_same_approval(client):
    first = await create(client)
    again = await create(client)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["status"] == "pending"
    assert first.json()["decided_at"] is None


async def test_create_with_other_content_under_an_existing_call_id_is_409(client):
    await create(client)

    response = await create(client, tool_name="format_disk")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert (await client.get("/approvals/call_1")).json()["tool_name"] == "delete_file"


async def test_decision_records_when_and_by_whom(client):
    await create(client)
    before = datetime.now().astimezone()

    response = await client.post(
        "/approvals/call_1/decision", json={"status": "approved", "decided_by": "alice"}
    )

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "approved"
    assert body["decided_by"] == "alice"
    decided_at = datetime.fromisoformat(body["decided_at"])
    assert decided_at.utcoffset() == timedelta(0)
    assert decided_at >= before - timedelta(seconds=1)


async def test_a_second_different_decision_is_409_and_changes_nothing(client):
    await create(client)
    await client.post("/approvals/call_1/decision", json={"status": "rejected"})

    same = await client.post("/approvals/call_1/decision", json={"status": "rejected"})
    other = await client.post("/approvals/call_1/decision", json={"status": "approved"})

    assert same.status_code == 200
    assert other.status_code == 409
    assert (await client.get("/approvals/call_1")).json()["status"] == "rejected"


async def test_two_different_decisions_at_once_one_wins_one_conflicts(client):
    await create(client)

    responses = await asyncio.gather(
        client.post("/approvals/call_1/decision", json={"status": "approved"}),
        client.post("/approvals/call_1/decision", json={"status": "rejected"}),
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r for r in responses if r.status_code == 200).json()["status"]
    assert (await client.get("/approvals/call_1")).json()["status"] == winner


@pytest.mark.parametrize(
    "body", [{"status": "pending"}, {"status": "maybe"}, {}, {"status": "approved", "extra": 1}]
)
async def test_invalid_decisions_are_422(client, body):
    await create(client)

    assert (await client.post("/approvals/call_1/decision", json=body)).status_code == 422
    assert (await client.get("/approvals/call_1")).json()["status"] == "pending"


async def test_deciding_an_unknown_approval_is_404(client):
    response = await client.post("/approvals/nope/decision", json={"status": "approved"})

    assert response.status_code == 404


async def test_inbox_filters_by_status_and_session_and_pages(client):
    for i in range(5):
        await create(client, call_id=f"c{i}", session_id="s1" if i < 3 else "s2")
    await client.post("/approvals/c1/decision", json={"status": "approved"})

    pending = (await client.get("/approvals", params={"status": "pending"})).json()
    s1_pending = (await client.get("/sessions/s1/approvals")).json()
    page1 = (await client.get("/approvals", params={"limit": 2})).json()
    page2 = (
        await client.get("/approvals", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    s2 = (await client.get("/approvals", params={"session_id": "s2"})).json()

    assert [a["call_id"] for a in pending["items"]] == ["c0", "c2", "c3", "c4"]
    assert [a["call_id"] for a in s1_pending["items"]] == ["c0", "c2"]
    assert [a["call_id"] for a in page1["items"] + page2["items"]] == ["c0", "c1", "c2", "c3"]
    assert [a["call_id"] for a in s2["items"]] == ["c3", "c4"]


@pytest.mark.parametrize("params", [{"status": "done"}, {"limit": 0}, {"cursor": "zz"}])
async def test_bad_inbox_queries_are_422(client, params):
    assert (await client.get("/approvals", params=params)).status_code == 422


async def test_get_and_delete_approval(client):
    await create(client)

    assert (await client.get("/approvals/call_1")).status_code == 200
    assert (await client.delete("/approvals/call_1")).status_code == 204
    assert (await client.delete("/approvals/call_1")).status_code == 404
    assert (await client.get("/approvals/call_1")).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"call_id": ""},
        {"tool_name": "x" * 256},
        {"arguments": [1]},
        {"session_id": None},
        {"unknown": True},
    ],
)
async def test_invalid_approvals_are_422(client, change):
    response = await create(client, **change)

    assert response.status_code == 422
    assert (await client.get("/approvals")).json()["items"] == []


async def test_status_update_is_the_legacy_last_write_wins(client):
    await create(client)

    first = await client.put("/approvals/call_1/status", json={"status": "approved"})
    second = await client.put("/approvals/call_1/status", json={"status": "rejected"})

    assert (first.status_code, first.json()) == (200, {"updated": True})
    assert (second.status_code, second.json()) == (200, {"updated": True})
    body = (await client.get("/approvals/call_1")).json()
    assert body["status"] == "rejected"
    assert body["decided_at"] is not None


async def test_status_update_of_an_unknown_or_claimed_call_is_not_updated(client):
    unknown = await client.put("/approvals/nope/status", json={"status": "approved"})
    assert (unknown.status_code, unknown.json()) == (200, {"updated": False})

    await create(client)
    await client.post("/approvals/call_1/decision", json={"status": "approved"})
    assert (await client.post("/approvals/call_1/claim", json={})).status_code == 200

    claimed = await client.put("/approvals/call_1/status", json={"status": "cancelled"})

    assert (claimed.status_code, claimed.json()) == (200, {"updated": False})
    assert (await client.get("/approvals/call_1")).json()["status"] == "claimed"


@pytest.mark.parametrize(
    "body", [{"status": "pending"}, {"status": "executed"}, {}, {"status": "approved", "x": 1}]
)
async def test_status_update_takes_only_a_decision(client, body):
    await create(client)

    response = await client.put("/approvals/call_1/status", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert (await client.get("/approvals/call_1")).json()["status"] == "pending"
