"""Request body size limit."""

from __future__ import annotations

import pytest

from agent_runtime.config import Settings
from agent_runtime.main import create_app

LIMIT = 4096


@pytest.fixture
def app(backend):
    return create_app(Settings(**backend.settings, max_body_bytes=LIMIT))


async def test_a_body_over_the_limit_is_413_and_saves_nothing(client):
    big = [{"role": "user", "content": "x" * LIMIT}]

    response = await client.post("/sessions/s1", json=big)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert (await client.get("/sessions/s1")).status_code == 404


async def test_a_streamed_body_without_length_is_cut_at_the_limit(client):
    async def chunks():
        yield b'[{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}]'

    response = await client.post(
        "/sessions/s1", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert (await client.get("/sessions/s1")).status_code == 404


async def test_a_body_under_the_limit_is_accepted(client):
    response = await client.post("/sessions/s1", json=[{"role": "user", "content": "x" * 100}])

    assert response.status_code == 200


def test_the_default_limit_is_ten_mebibytes():
    assert Settings().max_body_bytes == 10 * 1024 * 1024
