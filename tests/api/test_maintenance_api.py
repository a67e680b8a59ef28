"""Retention over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from agent_runtime.services import checkpoints
from agent_runtime.services import database as svc
from models import Checkpoint, PendingApproval, Session


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
        "trimmed_checkpoints": 0,
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
        "trimmed_checkpoints": 0,
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
        "trimmed_checkpoints": 0,
    }
    assert negative.status_code == 422


async def _checkpoints(db, thread_id: str, count: int) -> None:
    for step in range(count):
        await checkpoints.put_checkpoint(
            db,
            thread_id,
            "",
            f"{step:04d}",
            parent_checkpoint_id=f"{step - 1:04d}" if step else None,
            type="msgpack",
            checkpoint=b"state",
            metadata={"step": step},
        )


async def test_cleanup_keeps_the_latest_checkpoints_of_each_thread(client, backend):
    db = Tortoise.get_connection(backend.dialect)
    await _checkpoints(db, "long", 5)
    await _checkpoints(db, "short", 2)
    body = {"idle_hours": None, "purge_deleted_after_days": None, "keep_checkpoints": 2}

    dry = await client.post("/maintenance/cleanup", json={**body, "dry_run": True})
    assert dry.json()["trimmed_checkpoints"] == 3
    assert await Checkpoint.filter(session_id="long").using_db(db).count() == 5

    real = await client.post("/maintenance/cleanup", json=body)
    assert real.status_code == 200
    assert real.json()["trimmed_checkpoints"] == 3
    kept = (
        await Checkpoint.filter(session_id="long")
        .using_db(db)
        .order_by("checkpoint_id")
        .values_list("checkpoint_id", flat=True)
    )
    assert kept == ["0003", "0004"]
    assert await Checkpoint.filter(session_id="short").using_db(db).count() == 2


@pytest.mark.parametrize("keep", [0, -1, 2**63, 1.5, "all"])
async def test_keeping_no_checkpoint_is_refused_and_deletes_nothing(client, backend, keep):
    db = Tortoise.get_connection(backend.dialect)
    await _checkpoints(db, "thread", 2)

    response = await client.post("/maintenance/cleanup", json={"keep_checkpoints": keep})

    assert response.status_code == 422
    assert await Checkpoint.filter(session_id="thread").using_db(db).count() == 2
