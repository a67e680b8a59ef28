"""The fast paths answer what the pydantic response models answered: GET
/sessions/{id} is built from the stored JSON without decoding it, and the save
routes answer a pre-encoded body; a client sees the same documents."""

from __future__ import annotations

import json

from tortoise import Tortoise

from agent_runtime.schemas.common import StatusRead
from agent_runtime.schemas.sessions import SessionRead
from agent_runtime.services import database as svc

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": 'Wetter in Zürich? \U0001f326 \u00e9\u00e8 "quoted" \\ back'},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                "extra": {"nested": [1, 2.5, True, None, {"k": "v"}], "empty": {}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C"},
    {"role": "assistant", "content": "", "timestamp": "2026-01-02T03:04:05.123456+02:00"},
]


def old_rendering(loaded: dict) -> bytes:
    """What FastAPI rendered with `response_model=SessionRead, exclude_unset`."""
    return SessionRead.model_validate(loaded).model_dump_json(exclude_unset=True).encode()


async def test_get_session_is_the_document_the_response_model_rendered(client, backend):
    saved = await client.post("/sessions/s1", json=MESSAGES)
    connection = Tortoise.get_connection(backend.dialect)

    response = await client.get("/sessions/s1")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == saved.headers["etag"] == '"1"'
    expected = old_rendering(await svc.load_session(connection, "s1"))
    assert json.loads(response.content) == json.loads(expected)
    # Stored JSON is spliced in as text: on SQLite it is the compact JSON written,
    # so even the bytes are the same; PostgreSQL's JSONB re-renders it with spaces.
    if backend.name == "sqlite":
        assert response.content == expected


async def test_timestamps_are_utc_with_z_like_pydantic(client):
    await client.post("/sessions/s1", json=MESSAGES)

    document = (await client.get("/sessions/s1")).json()

    for key in ("created_at", "last_activity"):
        assert document[key].endswith("Z"), document[key]


async def test_save_and_append_answer_the_status_document(client):
    for url in ("/sessions/s1", "/sessions/s1/messages"):
        response = await client.post(url, json=MESSAGES[:1])

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == StatusRead(status="saved").model_dump()


async def test_message_page_items_are_the_loaded_shape_plus_position_and_metadata(client):
    stored = [*MESSAGES, {"role": "user", "content": "m", "metadata": {"k": [1, {"x": None}]}}]
    await client.post("/sessions/s1", json=stored)

    loaded = (await client.get("/sessions/s1")).json()["messages"]
    items = (await client.get("/sessions/s1/messages")).json()["items"]

    assert [item.pop("position") for item in items] == list(range(len(stored)))
    assert items[-1].pop("metadata") == {"k": [1, {"x": None}]}
    assert items == loaded  # otherwise the legacy shape, key for key
