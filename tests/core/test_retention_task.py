"""The retention policy can run periodically inside the server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from asgi_lifespan import LifespanManager
from tortoise import Tortoise

from agent_runtime.config import Settings
from agent_runtime.main import create_app
from agent_runtime.services import database as svc
from tests.fixtures.backends import truncate


async def test_the_server_applies_retention_every_interval(backend):
    app = create_app(
        Settings(db_url=backend.url, retention_interval_seconds=0.2, retention_idle_hours=24)
    )
    async with LifespanManager(app):
        db = Tortoise.get_connection(backend.name)
        await truncate(db)
        await svc.save_session(db, "idle", [], datetime.now(UTC) - timedelta(hours=30))
        await svc.save_session(db, "active", [], datetime.now(UTC))

        for _ in range(50):
            if await svc.list_all_sessions(db) == ["active"]:
                break
            await asyncio.sleep(0.1)

        assert await svc.list_all_sessions(db) == ["active"]
        assert sorted(await svc.list_all_sessions(db, include_deleted=True)) == ["active", "idle"]


async def test_no_retention_runs_by_default(backend):
    app = create_app(Settings(db_url=backend.url))
    async with LifespanManager(app):
        db = Tortoise.get_connection(backend.name)
        await truncate(db)
        await svc.save_session(db, "idle", [], datetime.now(UTC) - timedelta(days=300))
        await asyncio.sleep(0.5)

        assert await svc.list_all_sessions(db) == ["idle"]


def test_the_periodic_policy_follows_every_retention_setting():
    from agent_runtime.core.retention_task import policy_from

    policy = policy_from(
        Settings(
            retention_idle_hours=5,
            retention_purge_days=7,
            retention_expire_approvals_hours=9,
            retention_keep_checkpoints=3,
        )
    )

    assert (
        policy.idle_hours,
        policy.purge_deleted_after_days,
        policy.expire_approvals_after_hours,
        policy.keep_checkpoints,
    ) == (5, 7, 9, 3)
