"""Agent context endpoints."""

from __future__ import annotations

import pytest

CONTEXT = {
    "current_agent": "billing",
    "agent_history": [
        {"from": None, "to": "triage", "reason": "start", "timestamp": "2026-01-02T12:00:00Z"},
        {
            "from": "triage",
            "to": "billing",
            "reason": "invoice",
            "timestamp": "2026-01-02T15:05:00+03:00",
            "metadata": {"score": 0.9},
        },
    ],
    "metadata": {"tenant": "acme"},
    "created_at": "2026-01-02T12:00:00Z",
    "last_switch_at": "2026-01-02T12:05:00Z",
    "switch_count": 2,
}


@pytest.fixture
async def session(client):
    assert (await client.post("/sessions/s1", json=[])).status_code == 200


async def test_put_then_get_agent_context(client, session):
    put = await client.put("/sessions/s1/agent-context", json=CONTEXT)
    got = await client.get("/sessions/s1/agent-context")

    assert put.status_code == 200
    assert got.json() == put.json()
    body = got.json()
    assert body["current_agent"] == "billing"
    assert body["agent_history"][1] == {
        "from": "triage",
        "to": "billing",
        "reason": "invoice",
        "timestamp": "2026-01-02T12:05:00+00:00",
        "metadata": {"score": 0.9},
    }
    assert body["last_switch_at"] == "2026-01-02T12:05:00Z"
    assert body["switch_count"] == 2


async def test_switch_history_newest_first_and_context_list(client, session):
    await client.put("/sessions/s1/agent-context", json=CONTEXT)

    switches = (await client.get("/sessions/s1/agent-switches")).json()["items"]
    limited = (await client.get("/sessions/s1/agent-switches", params={"limit": 1})).json()
    listed = (await client.get("/agent-contexts")).json()

    assert [(s["from_agent"], s["to_agent"]) for s in switches] == [
        ("triage", "billing"),
        (None, "triage"),
    ]
    assert len(limited["items"]) == 1
    assert listed == {"session_ids": ["s1"]}


async def test_context_for_an_unknown_session_is_404_and_not_saved(client):
    response = await client.put("/sessions/ghost/agent-context", json=CONTEXT)

    assert response.status_code == 404
    assert (await client.get("/sessions/ghost/agent-context")).status_code == 404
    assert (await client.get("/agent-contexts")).json() == {"session_ids": []}


async def test_delete_agent_context(client, session):
    await client.put("/sessions/s1/agent-context", json=CONTEXT)

    assert (await client.delete("/sessions/s1/agent-context")).status_code == 204
    assert (await client.delete("/sessions/s1/agent-context")).status_code == 404
    assert (await client.get("/sessions/s1/agent-context")).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"current_agent": ""},
        {"switch_count": -1},
        {"agent_history": [{"from": "a"}]},
        {"agent_history": [{"to": "b", "timestamp": "yesterday"}]},
        {"metadata": [1, 2]},
        {"unknown_field": 1},
    ],
)
async def test_invalid_context_is_422_and_changes_nothing(client, session, change):
    await client.put("/sessions/s1/agent-context", json=CONTEXT)

    response = await client.put("/sessions/s1/agent-context", json={**CONTEXT, **change})

    assert response.status_code == 422
    assert (await client.get("/sessions/s1/agent-context")).json()["current_agent"] == "billing"
