"""Liveness and readiness."""

from __future__ import annotations

from tortoise import Tortoise


async def test_live_and_ready(client, backend):
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "database": backend.dialect,
        "pending_migrations": [],
    }


async def test_not_ready_when_a_migration_is_missing(client, backend):
    db = Tortoise.get_connection(backend.dialect)
    rows = await db.execute_query_dict("SELECT id, version FROM aerich ORDER BY id DESC")
    await db.execute_query(f"DELETE FROM aerich WHERE id = {rows[0]['id']}")
    try:
        response = await client.get("/health/ready")
    finally:
        await db.execute_query(
            "INSERT INTO aerich (version, app, content) VALUES (?, 'models', '{}')"
            if backend.name == "sqlite"
            else "INSERT INTO aerich (version, app, content) VALUES ($1, 'models', '{}')",
            [rows[0]["version"]],
        )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert "aerich upgrade" in response.json()["error"]["message"]
