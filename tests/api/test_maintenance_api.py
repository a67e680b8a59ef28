"""Retention over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise import Tortoise

from agent_runtime.services import database as svc


async def test_cleanup_soft_deletes_idle_and_purges_old_deleted_sessions(client, backend):
    db = Tortoise.get_connection(backend.name)
    now = datetime.now(UTC)
    await svc.save_session(db, "idle", [], now - timedelta(hours=48))
    await svc.save_session(db, "active", [], now)
    await svc.save_session(db, "long_gone", [], now)
    await svc.delete_session(db, "long_gone")
    from models import Session

    await Session.filter(id="long_gone").using_db(db).update(deleted_at=now - timedelta(days=60))

    response = await client.post(
        "/maintenance/cleanup", json={"idle_hours": 24, "purge_deleted_after_days": 30}
    )

    assert response.status_code == 200
    assert response.json() == {"soft_deleted": 1, "hard_deleted": 1}
    assert await svc.list_all_sessions(db, include_deleted=True) == ["active", "idle"]
    assert await svc.list_all_sessions(db) == ["active"]


async def test_cleanup_steps_can_be_skipped_and_inputs_are_validated(client):
    skipped = await client.post(
        "/maintenance/cleanup", json={"idle_hours": None, "purge_deleted_after_days": None}
    )
    negative = await client.post("/maintenance/cleanup", json={"idle_hours": -1})

    assert skipped.json() == {"soft_deleted": 0, "hard_deleted": 0}
    assert negative.status_code == 422
