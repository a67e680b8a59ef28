"""The design note's two endpoints, through the app with its lifespan, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MESSAGES = [
    {"role": "user", "content": "What's the weather?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "weather", "content": "sunny"},
]


async def test_post_saves_and_get_loads_the_session(client):
    saved = await client.post("/sessions/s1", json=MESSAGES)

    assert saved.status_code == 200
    assert saved.json() == {"status": "saved"}
    loaded = await client.get("/sessions/s1")
    assert loaded.status_code == 200
    body = loaded.json()
    assert body["session_id"] == "s1"
    assert body["messages"] == MESSAGES
    last_activity = datetime.fromisoformat(body["last_activity"])
    assert last_activity.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - last_activity) < timedelta(minutes=1)


async def test_get_unknown_session_is_404_with_the_error_body(client):
    response = await client.get("/sessions/nope")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "session 'nope' not found"}
    }


async def test_invalid_messages_are_422_and_change_nothing(client):
    await client.post("/sessions/s1", json=MESSAGES)

    bad_role = await client.post("/sessions/s1", json=[{"role": "robot", "content": "x"}])
    not_a_list = await client.post("/sessions/s1", json={"role": "user"})
    not_json = await client.post(
        "/sessions/s1", content=b"{nope", headers={"content-type": "application/json"}
    )

    for response in (bad_role, not_a_list, not_json):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_input"
    assert (await client.get("/sessions/s1")).json()["messages"] == MESSAGES


async def test_errors_never_leak_internals(client):
    response = await client.post("/sessions/" + "x" * 300, json=MESSAGES)

    assert response.status_code == 422
    text = response.text.lower()
    assert "traceback" not in text and "select" not in text and "insert" not in text
