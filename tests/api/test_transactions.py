"""`DBSession`: one transaction per request, committed before the response is sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from tortoise import Tortoise

from agent_runtime.core.dependencies import DBService, DBSession
from agent_runtime.services import database as svc

PROBE_DDL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS commit_probe (id INTEGER PRIMARY KEY, "
    "session_id VARCHAR(255) REFERENCES sessions (id) DEFERRABLE INITIALLY DEFERRED)",
    "postgres": "CREATE TABLE IF NOT EXISTS commit_probe (id SERIAL PRIMARY KEY, "
    "session_id VARCHAR(255) REFERENCES sessions (id) DEFERRABLE INITIALLY DEFERRED)",
}


@pytest.fixture
def app(app: FastAPI, backend) -> FastAPI:
    """The real app plus probe routes whose transaction fails only at COMMIT."""

    @app.post("/probe/deferred-failure/{session_id}")
    async def fail_at_commit(session_id: str, db: DBSession, db_service: DBService):
        await db_service.save_session(
            db, session_id, [{"role": "user", "content": "hi"}], datetime.now(UTC)
        )
        # A foreign key checked only at COMMIT: the endpoint itself succeeds.
        await db.execute_query("INSERT INTO commit_probe (session_id) VALUES ('ghost')")
        return {"status": "saved"}

    @app.post("/probe/endpoint-raises/{session_id}")
    async def raise_after_write(session_id: str, db: DBSession, db_service: DBService):
        await db_service.save_session(db, session_id, [], datetime.now(UTC))
        raise RuntimeError("boom after the write")

    return app


@pytest.fixture
async def probe_table(client, backend):
    connection = Tortoise.get_connection(backend.dialect)
    await connection.execute_script(PROBE_DDL[backend.dialect])
    yield
    await connection.execute_script("DROP TABLE IF EXISTS commit_probe")


async def test_a_failing_commit_never_answers_2xx_and_saves_nothing(client, probe_table):
    response = await client.post("/probe/deferred-failure/s1")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "commit_probe" not in response.text
    assert (await client.get("/sessions/s1")).status_code == 404


async def test_the_service_keeps_answering_after_a_failed_commit(client, probe_table):
    for _ in range(3):
        assert (await client.post("/probe/deferred-failure/s1")).status_code == 500

    saved = await client.post("/sessions/s2", json=[{"role": "user", "content": "still here"}])
    loaded = await client.get("/sessions/s2")

    assert saved.status_code == 200
    assert loaded.json()["messages"] == [{"role": "user", "content": "still here"}]


async def test_an_endpoint_that_raises_rolls_back_its_writes(client, backend):
    response = await client.post("/probe/endpoint-raises/s1")

    assert response.status_code == 500
    assert "boom" not in response.text
    assert (await client.get("/sessions/s1")).status_code == 404


async def test_a_2xx_means_the_write_is_visible_to_other_connections(client, backend):
    assert (await client.post("/sessions/s1", json=[{"role": "user", "content": "x"}])).is_success

    # Outside any request transaction, straight from the connection.
    loaded = await svc.load_session(Tortoise.get_connection(backend.dialect), "s1")
    assert loaded["messages"] == [{"role": "user", "content": "x"}]
