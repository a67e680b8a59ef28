"""The retention policy, run periodically inside the server (AGENT_RUNTIME__RETENTION_*)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tortoise.transactions import in_transaction

from agent_runtime.config import Settings
from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.observability.metrics import RETENTION_RUNS
from agent_runtime.services._common import events_committed
from agent_runtime.services.retention import RetentionPolicy, run_retention

__all__ = ["periodic_retention", "policy_from"]

logger = logging.getLogger(__name__)


def policy_from(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        idle_hours=settings.retention_idle_hours,
        purge_deleted_after_days=settings.retention_purge_days,
        expire_approvals_after_hours=settings.retention_expire_approvals_hours,
        keep_checkpoints=settings.retention_keep_checkpoints,
    )


async def _loop(connection_name: str, policy: RetentionPolicy, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            async with in_transaction(connection_name) as conn:
                report = await run_retention(conn, policy)
            events_committed()  # the approvals it expired: waiters hear at once
        except Exception as exc:
            # A failed run is retried at the next interval; it must not stop the server.
            outcome = "unavailable" if is_database_unavailable(exc) else "failed"
            RETENTION_RUNS.labels(outcome=outcome).inc()
            if outcome == "unavailable":
                logger.warning("retention skipped, database unavailable: %s", exc)
            else:
                logger.exception("retention run failed")
            continue
        RETENTION_RUNS.labels(outcome="ok").inc()
        if report.soft_deleted or report.hard_deleted or report.expired_approvals:
            logger.info(
                "retention: %d soft-deleted, %d hard-deleted, %d approvals expired",
                report.soft_deleted,
                report.hard_deleted,
                report.expired_approvals,
            )


@asynccontextmanager
async def periodic_retention(settings: Settings, connection_name: str) -> AsyncIterator[None]:
    """Run the policy every `retention_interval_seconds` while the app lives (0: never).

    Every worker runs it; the steps are idempotent, so overlapping runs are harmless.
    """
    if settings.retention_interval_seconds <= 0:
        yield
        return
    task = asyncio.create_task(
        _loop(connection_name, policy_from(settings), settings.retention_interval_seconds)
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
