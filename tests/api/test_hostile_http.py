"""Hostile HTTP input gets a clear 4xx, never a 5xx, and changes nothing."""

from __future__ import annotations

import pytest

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_METADATA = (
    b'[{"role": "user", "content": "x", "metadata": '
    + b'{"a": ' * 5000
    + b"1"
    + b"}" * 5000
    + b"}]"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'[{"role": "user", "content": "x"}]'),
        ("application/xml", b"<messages/>"),
        (None, b"[]"),
        ("application/json", DEEP),
        ("application/json", DEEP_METADATA),
        (
            "application/json",
            b'[{"role": "user", "content": "x", "timestamp": "2026-01-01T25:00"}]',
        ),
        (
            "application/json",
            b'[{"role": "user", "content": "x", "timestamp": "2026-01-01T10:00:00+25:00"}]',
        ),
        ("application/json", b'[{"role": "user", "content": "x", "token_count": 99999999999}]'),
        ("application/json", b'[{"role": "user", "content": "\\ud800"}]'),
        ("application/json", '[{"role": "user", "content": "\u00e9"}]'.encode("latin-1")),
    ],
)
async def test_malformed_bodies_are_422(client, content_type, body):
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post("/sessions/s1", content=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert (await client.get("/sessions/s1")).status_code == 404


@pytest.mark.parametrize("session_id", ["x" * 256, "%00", "a%00b", "%ED%A0%80"])
async def test_hostile_ids_in_paths_are_422(client, session_id):
    for method, path in [
        ("GET", f"/sessions/{session_id}"),
        ("GET", f"/sessions/{session_id}/messages"),
        ("DELETE", f"/sessions/{session_id}"),
        ("GET", f"/approvals/{session_id}"),
    ]:
        response = await client.request(method, path)
        assert response.status_code in (404, 422), (method, path, response.text)
        assert response.status_code != 404 or session_id == "%ED%A0%80"


async def test_sql_injection_text_is_stored_and_returned_literally(client):
    sneaky = "'; DROP TABLE messages; --"

    saved = await client.post(f"/sessions/{sneaky}", json=[{"role": "user", "content": sneaky}])
    loaded = await client.get(f"/sessions/{sneaky}")

    assert saved.status_code == 200
    assert loaded.json()["messages"] == [{"role": "user", "content": sneaky}]
    assert loaded.json()["session_id"] == sneaky
