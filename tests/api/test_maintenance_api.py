"""Retention over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from agent_runtime.services import database as svc
from models import PendingApproval, Session


@pytest.fixture
async def aged(client, backend):
    """An idle session, an active one, one deleted long ago, an old and a new approval."""
    db = Tortoise.get_connection(backend.dialect)
    now = datetime.now(UTC)
    await svc.save_session(db, "idle", [], now - timedelta(hours=48))
    await svc.save_session(db, "active", [], now)
    await svc.save_session(db, "long_gone", [], now)
    await svc.delete_session(db, "long_gone")
    await Session.filter(id="long_gone").using_db(db).update(deleted_at=now - timedelta(days=60))
    await svc.save_pending_approval(db, "active", "old_call", "tool", {})
    await svc.save_pending_approval(db, "active", "new_call", "tool", {})
    await (
        PendingApproval.filter(call_id="old_call")
        .using_db(db)
        .update(created_at=now - timedelta(hours=72))
    )
    return db


async def test_cleanup_applies_the_whole_policy(client, aged):
    response = await client.post(
        "/maintenance/cleanup",
        json={"idle_hours": 24, "purge_deleted_after_days": 30, "expire_approvals_after_hours": 48},
    )

    assert response.status_code == 200
    assert response.json() == {
        "soft_deleted": 1,
        "hard_deleted": 1,
        "expired_approvals": 1,
        "dry_run": False,
    }
    assert await svc.list_all_sessions(aged, include_deleted=True) == ["active", "idle"]
    assert await svc.list_all_sessions(aged) == ["active"]
    assert (await client.get("/approvals/old_call")).json()["status"] == "expired"
    assert (await client.get("/approvals/new_call")).json()["status"] == "pending"
    decide = await client.post("/approvals/old_call/decision", json={"status": "approved"})
    assert decide.status_code == 409


async def test_dry_run_counts_and_changes_nothing(client, aged):
    response = await client.post(
        "/maintenance/cleanup",
        json={
            "idle_hours": 24,
            "purge_deleted_after_days": 30,
            "expire_approvals_after_hours": 48,
            "dry_run": True,
        },
    )

    assert response.json() == {
        "soft_deleted": 1,
        "hard_deleted": 1,
        "expired_approvals": 1,
        "dry_run": True,
    }
    assert sorted(await svc.list_all_sessions(aged, include_deleted=True)) == [
        "active",
        "idle",
        "long_gone",
    ]
    assert (await client.get("/approvals/old_call")).json()["status"] == "pending"


async def test_cleanup_steps_can_be_skipped_and_inputs_are_validated(client):
    skipped = await client.post(
        "/maintenance/cleanup", json={"idle_hours": None, "purge_deleted_after_days": None}
    )
    negative = await client.post("/maintenance/cleanup", json={"idle_hours": -1})

    assert skipped.json() == {
        "soft_deleted": 0,
        "hard_deleted": 0,
        "expired_approvals": 0,
        "dry_run": False,
    }
    assert negative.status_code == 422
