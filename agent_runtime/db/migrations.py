"""Aerich migrations, run with the service's own configuration."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aerich import Command
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.exceptions import OperationalError

from agent_runtime.db.config import APP_LABEL, tortoise_config
from agent_runtime.db.migration_lock import migration_lock
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.errors import SchemaOutOfDateError

__all__ = [
    "MIGRATIONS_DIR",
    "apply_migrations",
    "ensure_schema",
    "migration_files",
    "pending_migrations",
    "pending_on_connection",
]

logger = logging.getLogger(__name__)

# Absolute, so the service finds its migrations whatever the working directory.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@asynccontextmanager
async def _aerich(config: dict[str, Any]) -> AsyncIterator[Command]:
    # Aerich calls Tortoise.init(), which would close and re-initialize the
    # caller's Tortoise context; a fresh context keeps the two apart.
    with TortoiseContext():
        command = Command(config, app=APP_LABEL, location=str(MIGRATIONS_DIR))
        await command.init()
        try:
            yield command
        finally:
            await Tortoise.close_connections()


async def pending_migrations(db: DatabaseURL) -> list[str]:
    """Migration files not yet applied to the database, oldest first."""
    async with _aerich(tortoise_config(db)) as command:
        try:
            return await command.heads()
        except OperationalError:  # no `aerich` table yet: an empty database
            return await command.history()


def migration_files() -> list[str]:
    """Migration file names, oldest first (Aerich orders by the leading number)."""
    files = (MIGRATIONS_DIR / APP_LABEL).glob("*.py")
    names = [f.name for f in files if f.name.split("_", 1)[0].isdigit()]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


async def pending_on_connection(connection: BaseDBAsyncClient) -> list[str]:
    """Like `pending_migrations`, on an open connection and without Aerich's set-up:
    cheap enough for a readiness probe."""
    try:
        rows = await connection.execute_query_dict(
            "SELECT version FROM aerich WHERE app = 'models'"
        )
    except OperationalError:  # no `aerich` table: nothing applied
        return migration_files()
    applied = {r["version"] for r in rows}
    return [name for name in migration_files() if name not in applied]


async def apply_migrations(db: DatabaseURL) -> list[str]:
    """Apply pending migrations (each in its own transaction); return what ran.

    Safe when several processes start at once: one applies, the others wait for
    it and then find nothing left to do.
    """
    db.ensure_sqlite_folder()
    async with migration_lock(db), _aerich(tortoise_config(db)) as command:
        return await command.upgrade(run_in_transaction=True)


async def ensure_schema(db: DatabaseURL, *, auto_migrate: bool) -> None:
    """Make sure the schema is current before serving.

    SQLite is the embedded single-host default, so its migrations are applied
    here; PostgreSQL deployments may run several workers, and apply them as a
    deploy step. Raises `SchemaOutOfDateError` with the command to run.
    """
    db.ensure_sqlite_folder()
    pending = await pending_migrations(db)
    if not pending:
        return
    if db.is_sqlite and auto_migrate:
        applied = await apply_migrations(db)
        logger.info("applied %d migration(s): %s", len(applied), ", ".join(applied))
        return
    raise SchemaOutOfDateError(
        f"database schema is behind: {len(pending)} migration(s) pending "
        f"({pending[0]} .. {pending[-1]}); run `aerich upgrade` from the project folder "
        "with the same AGENT_RUNTIME__DB_URL"
    )
