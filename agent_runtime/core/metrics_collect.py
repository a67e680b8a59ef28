"""What is measured when asked rather than counted as it happens: the database pool
and the pending approvals. `refresh` runs at every scrape; `running_metrics` keeps
each worker's pool gauges current between scrapes (several workers) and marks the
worker dead at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.observability.metrics import (
    APPROVALS_PENDING,
    APPROVALS_PENDING_OLDEST_SECONDS,
    DB_POOL_IN_USE,
    DB_POOL_SIZE,
    DB_POOL_WAITING,
    MULTIPROCESS,
    exposition,
    mark_this_worker_dead,
)
from agent_runtime.services.approvals import pending_approval_stats
from agent_runtime.timeutils import utc_now

__all__ = ["pool_stats", "refresh", "render", "running_metrics"]

logger = logging.getLogger("agent_runtime.metrics")

POOL_SAMPLE_SECONDS = 1.0  # several workers: how stale another worker's pool gauges may be
SCRAPE_QUERY_SECONDS = 5.0  # the pending-approvals query may not hold a scrape longer

_failing = False  # the last scrape's query failed (logged once per outage)


def _pending(futures: Any) -> int:
    return sum(1 for future in futures or () if not future.done())


def pool_stats(connection: BaseDBAsyncClient) -> tuple[int, int, int] | None:
    """(size, in use, waiting) of `connection`'s pool; None before it is open.

    PostgreSQL: asyncpg's pool; "waiting" counts the callers blocked in
    `acquire()`, read from the pool's internal queue (`Pool._queue`, an
    asyncio.Queue of connection holders): 0 if a later asyncpg moves it.
    SQLite: one connection behind a lock, in use while a query or transaction
    holds it; waiting: the lock's waiters.
    """
    if connection.capabilities.dialect == "postgres":
        pool = getattr(connection, "_pool", None)
        if pool is None:
            return None
        size = pool.get_size()
        waiting = _pending(getattr(getattr(pool, "_queue", None), "_getters", None))
        return size, size - pool.get_idle_size(), waiting
    lock = getattr(connection, "_lock", None)
    if not isinstance(lock, asyncio.Lock):
        return None
    return 1, int(lock.locked()), _pending(getattr(lock, "_waiters", None))


def _sample_pool(connection_name: str) -> None:
    try:
        stats = pool_stats(Tortoise.get_connection(connection_name))
    except Exception:  # no connection (shutting down): report nothing open
        stats = None
    size, in_use, waiting = stats or (0, 0, 0)
    DB_POOL_SIZE.set(size)
    DB_POOL_IN_USE.set(in_use)
    DB_POOL_WAITING.set(waiting)


async def _sample_approvals(connection_name: str) -> None:
    global _failing
    try:
        async with asyncio.timeout(SCRAPE_QUERY_SECONDS):
            count, oldest = await pending_approval_stats(Tortoise.get_connection(connection_name))
    except Exception as exc:
        # The scrape still answers (the pool's state matters most when the database
        # does not): the gauges say "unknown" rather than a stale number.
        if not _failing:
            logger.warning("metrics: cannot count pending approvals (%r)", exc)
        _failing = True
        APPROVALS_PENDING.set(math.nan)
        APPROVALS_PENDING_OLDEST_SECONDS.set(math.nan)
        return
    if _failing:
        logger.info("metrics: pending approvals counted again")
    _failing = False
    APPROVALS_PENDING.set(count)
    age = 0.0 if oldest is None else max(0.0, (utc_now() - oldest).total_seconds())
    APPROVALS_PENDING_OLDEST_SECONDS.set(age)


async def refresh(connection_name: str) -> None:
    """Update the scrape-time gauges: this worker's pool, the pending approvals."""
    _sample_pool(connection_name)
    await _sample_approvals(connection_name)


async def render(connection_name: str) -> bytes:
    """The body of `GET /metrics`."""
    await refresh(connection_name)
    if MULTIPROCESS:  # reads every worker's files: off the event loop
        return await run_in_threadpool(exposition)
    return exposition()


async def _sample_forever(connection_name: str) -> None:
    while True:
        _sample_pool(connection_name)
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


@asynccontextmanager
async def running_metrics(connection_name: str) -> AsyncIterator[None]:
    """While the app runs. Several workers: another worker's scrape reads this
    one's pool gauges from its file, so they are kept current here; at shutdown its
    live gauges are withdrawn (`mark_process_dead`)."""
    task = None
    if MULTIPROCESS:
        task = asyncio.create_task(_sample_forever(connection_name), name="metrics-pool")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        mark_this_worker_dead()
