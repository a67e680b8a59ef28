"""The design note's two endpoints, through the app with its lifespan, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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


async def test_list_sessions_pages_by_last_activity_with_a_cursor(client):
    for i in range(5):
        assert (await client.post(f"/sessions/s{i}", json=[])).status_code == 200

    first = (await client.get("/sessions", params={"limit": 2})).json()
    second = await client.get("/sessions", params={"limit": 2, "cursor": first["next_cursor"]})
    third = await client.get(
        "/sessions", params={"limit": 2, "cursor": second.json()["next_cursor"]}
    )

    ids = [s["session_id"] for page in (first, second.json(), third.json()) for s in page["items"]]
    assert ids == ["s4", "s3", "s2", "s1", "s0"]
    assert third.json()["next_cursor"] is None
    assert first["items"][0]["version"] == 1


async def test_list_sessions_hides_deleted_unless_asked(client):
    await client.post("/sessions/kept", json=[])
    await client.post("/sessions/gone", json=[])
    assert (await client.delete("/sessions/gone")).status_code == 204

    visible = (await client.get("/sessions")).json()["items"]
    everything = (await client.get("/sessions", params={"include_deleted": True})).json()["items"]

    assert [s["session_id"] for s in visible] == ["kept"]
    assert {s["session_id"] for s in everything} == {"kept", "gone"}
    assert next(s for s in everything if s["session_id"] == "gone")["deleted_at"] is not None


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"cursor": "not-a-cursor"}, {"cursor": "WzFd"}]
)
async def test_list_sessions_rejects_bad_paging(client, params):
    response = await client.get("/sessions", params=params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


async def test_every_write_increments_the_version_served_as_etag(client):
    first = await client.post("/sessions/s1", json=MESSAGES)
    second = await client.post("/sessions/s1", json=MESSAGES)
    patched = await client.patch("/sessions/s1", json={"title": "Weather"})

    assert [r.headers["etag"] for r in (first, second, patched)] == ['"1"', '"2"', '"3"']
    assert (await client.get("/sessions/s1")).headers["etag"] == '"3"'
    assert patched.json()["version"] == 3


async def test_if_match_makes_a_save_conditional(client):
    await client.post("/sessions/s1", json=MESSAGES)

    ok = await client.post("/sessions/s1", json=MESSAGES[:1], headers={"If-Match": '"1"'})
    stale = await client.post("/sessions/s1", json=[], headers={"If-Match": '"1"'})

    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    loaded = await client.get("/sessions/s1")
    assert loaded.json()["messages"] == MESSAGES[:1]
    assert loaded.headers["etag"] == '"2"'


@pytest.mark.parametrize("header", ['W/"1"', "1", '"abc"', '"2", "3"'])
async def test_if_match_that_cannot_match_is_412_and_changes_nothing(client, header):
    await client.post("/sessions/s1", json=MESSAGES)

    response = await client.post("/sessions/s1", json=[], headers={"If-Match": header})

    assert response.status_code == 412
    assert (await client.get("/sessions/s1")).json()["messages"] == MESSAGES


async def test_if_match_star_and_lists(client):
    missing = await client.post("/sessions/new", json=[], headers={"If-Match": "*"})
    assert missing.status_code == 412
    await client.post("/sessions/s1", json=[])

    star = await client.post("/sessions/s1", json=[], headers={"If-Match": "*"})
    listed = await client.post("/sessions/s1", json=[], headers={"If-Match": '"9", "2"'})

    assert (star.status_code, listed.status_code) == (200, 200)
    assert listed.headers["etag"] == '"3"'


async def test_without_if_match_the_last_write_wins(client):
    await client.post("/sessions/s1", json=MESSAGES)
    await client.post("/sessions/s1", json=MESSAGES[:1])

    assert (await client.get("/sessions/s1")).json()["messages"] == MESSAGES[:1]


async def test_patch_changes_title_and_description(client):
    await client.post("/sessions/s1", json=MESSAGES)

    response = await client.patch(
        "/sessions/s1", json={"title": "t" * 600, "description": "about weather"}
    )
    cleared = await client.patch("/sessions/s1", json={"description": None})

    assert response.status_code == 200
    assert response.json()["title"] == "t" * 500
    assert response.json()["description"] == "about weather"
    assert cleared.json()["description"] is None
    assert cleared.json()["title"] == "t" * 500


async def test_patch_errors(client):
    await client.post("/sessions/s1", json=[])

    assert (await client.patch("/sessions/nope", json={"title": "x"})).status_code == 404
    assert (await client.patch("/sessions/s1", json={"color": "red"})).status_code == 422
    stale = await client.patch("/sessions/s1", json={"title": "x"}, headers={"If-Match": '"5"'})
    assert stale.status_code == 412
    assert (await client.get("/sessions", params={"limit": 1})).json()["items"][0]["title"] is None


async def test_soft_and_hard_delete(client):
    await client.post("/sessions/s1", json=MESSAGES)
    await client.post("/sessions/s2", json=MESSAGES)

    assert (await client.delete("/sessions/s1")).status_code == 204
    assert (await client.get("/sessions/s1")).status_code == 404
    assert (await client.delete("/sessions/s1")).status_code == 404
    assert (await client.delete("/sessions/s1", params={"hard": True})).status_code == 204
    assert (await client.delete("/sessions/s2", params={"hard": True})).status_code == 204

    everything = (await client.get("/sessions", params={"include_deleted": True})).json()
    assert everything["items"] == []


async def test_conditional_delete(client):
    await client.post("/sessions/s1", json=[])

    stale = await client.delete("/sessions/s1", headers={"If-Match": '"9"'})
    current = await client.delete("/sessions/s1", headers={"If-Match": '"1"'})

    assert (stale.status_code, current.status_code) == (412, 204)


async def test_stats(client):
    await client.post(
        "/sessions/s1",
        json=[
            {"role": "user", "content": "a", "token_count": 3},
            {"role": "assistant", "content": "b", "token_count": 4},
        ],
    )

    stats = await client.get("/sessions/s1/stats")

    assert stats.status_code == 200
    assert stats.json()["message_count"] == 2
    assert stats.json()["total_tokens"] == 7
    assert (await client.get("/sessions/nope/stats")).status_code == 404


async def test_tool_calls_are_any_storable_json_list_as_in_process(client):
    messages = [
        {"role": "assistant", "content": None, "tool_calls": [{"anything": 1}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "code"}]},
    ]

    assert (await client.post("/sessions/s1", json=messages)).status_code == 200

    assert (await client.get("/sessions/s1")).json()["messages"] == messages


@pytest.mark.parametrize(
    "bad_message",
    [
        {"role": "user", "content": ["multimodal", "parts"]},
        {"role": "assistant", "tool_calls": "call_1"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f\u0000"}}]},
        {"role": "user", "content": "x", "token_count": -5},
        {"content": "no role"},
    ],
)
async def test_messages_are_validated_by_the_service_rule(client, bad_message):
    response = await client.post("/sessions/s1", json=[bad_message])

    assert response.status_code == 422
    assert response.json()["error"]["details"]
    assert (await client.get("/sessions/s1")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/sessions/s1", b'[{"role": "user", "content": "a\\u0000b"}]'),
        ("POST", "/sessions/s1", b'[{"role": "user", "content": "\\udbc2"}]'),
        (
            "POST",
            "/sessions/s1",
            b'[{"role": "user", "content": "x", "metadata": {"k": "\\u0000"}}]',
        ),
        ("GET", "/sessions/a%00b", None),
        ("POST", "/sessions/s1", b"\xff{"),
        (
            "POST",
            "/approvals",
            b'{"session_id": "s1", "call_id": "c1", "tool_name": "t", "reason": "\\u0000"}',
        ),
    ],
)
async def test_unstorable_or_undecodable_input_is_422_never_500(client, method, path, body):
    response = await client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert (await client.get("/sessions")).json()["items"] == []
