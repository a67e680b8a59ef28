"""One migrator at a time, when several workers or replicas start together.

PostgreSQL: a session-level advisory lock on a dedicated connection (held by
the server, released if the process dies). SQLite: an exclusive `flock` on a
file beside the database (released by the kernel if the process dies).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from agent_runtime.db.urls import DatabaseURL
from agent_runtime.errors import ConfigurationError

__all__ = ["MIGRATION_LOCK_KEY", "migration_lock"]

# Any fixed 64-bit number; other applications sharing the database must not use it.
MIGRATION_LOCK_KEY = 0x6167_656E_7472_756E  # "agentrun"


@asynccontextmanager
async def migration_lock(db: DatabaseURL) -> AsyncIterator[None]:
    if db.is_sqlite:
        async with _file_lock(db):
            yield
        return
    if db.pooler == "pgbouncer" and db.direct is None:
        # A session-level lock through a transaction pooler is taken on one server
        # connection and released on another: it would never be released.
        raise ConfigurationError(
            "AGENT_RUNTIME__DB_POOLER=pgbouncer: migrations take a session-level lock, "
            "which needs a direct connection: set AGENT_RUNTIME__DB_DIRECT_URL"
        )
    conn = await asyncpg.connect(**db.session_url.asyncpg_connect_args())
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


@asynccontextmanager
async def _file_lock(db: DatabaseURL) -> AsyncIterator[None]:
    path = db.sqlite_path
    if path is None:  # in-memory: one process by definition
        yield
        return
    fd = os.open(f"{path}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        # flock blocks; keep the event loop free while another process migrates.
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
