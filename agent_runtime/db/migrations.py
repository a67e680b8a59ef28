"""Aerich migrations, run with the service's own configuration."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aerich import Command
from aerich.models import Aerich
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.errors import is_missing_table
from agent_runtime.db.migration_files import (
    APP_LABEL,
    MIGRATIONS_DIR,
    MIGRATIONS_DIR_ENV,
    check_migration_files,
    display_path,
    find_migration,
    load_migration,
    migration_files,
)
from agent_runtime.db.migration_lock import migration_lock
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.errors import MigrationFileError, SchemaOutOfDateError

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATIONS_DIR_ENV",
    "MigrationResult",
    "applied_on_connection",
    "apply_migrations",
    "check_migration_files",
    "display_path",
    "ensure_schema",
    "find_migration",
    "migrate_to",
    "migration_files",
    "pending_migrations",
    "pending_on_connection",
]

logger = logging.getLogger(__name__)

MigrationResult = tuple[list[str], list[str]]  # (applied, unapplied), in the order run


@asynccontextmanager
async def _aerich(config: dict[str, Any]) -> AsyncIterator[Command]:
    # Aerich calls Tortoise.init(), which would close and re-initialize the
    # caller's Tortoise context; a fresh context keeps the two apart.
    # Closed through the context, not `Tortoise.close_connections()`: that one logs
    # "Tortoise-ORM shutdown", which at start-up reads as if the server were stopping.
    with TortoiseContext() as context:
        command = Command(config, app=APP_LABEL, location=str(MIGRATIONS_DIR))
        await command.init()
        try:
            yield command
        finally:
            await context.close_connections()


async def pending_migrations(db: DatabaseURL) -> list[str]:
    """Migration files not yet applied to the database, oldest first."""
    check_migration_files(db.dialect)
    async with _aerich(tortoise_config(db)) as command:
        try:
            return await command.heads()
        except OperationalError as exc:
            # Only a missing `aerich` table means "an empty database": any other
            # error is reported as what it is, never as "migrations pending".
            if not is_missing_table(exc):
                raise
            return await command.history()


async def applied_on_connection(connection: BaseDBAsyncClient) -> list[str]:
    """Versions recorded as applied, in the order they were applied."""
    try:
        rows = await connection.execute_query_dict(
            f"SELECT version FROM aerich WHERE app = '{APP_LABEL}' ORDER BY id"
        )
    except OperationalError as exc:
        if not is_missing_table(exc):  # only "no aerich table" means "nothing applied"
            raise
        return []
    return [r["version"] for r in rows]


async def pending_on_connection(connection: BaseDBAsyncClient) -> list[str]:
    """Like `pending_migrations`, on an open connection and without Aerich's set-up:
    cheap enough for a readiness probe. Raises `MigrationFileError` like it."""
    check_migration_files(connection.capabilities.dialect)
    applied = set(await applied_on_connection(connection))
    return [name for name in migration_files() if name not in applied]


async def apply_migrations(db: DatabaseURL) -> list[str]:
    """Apply pending migrations (each in its own transaction); return what ran.

    Safe when several processes start at once: one applies, the others wait for
    it and then find nothing left to do.
    """
    check_migration_files(db.dialect)
    db.ensure_sqlite_folder()
    async with migration_lock(db), _aerich(tortoise_config(db)) as command:
        return await command.upgrade(run_in_transaction=True)


async def migrate_to(db: DatabaseURL, target: str | None) -> MigrationResult:
    """Apply or undo migrations so that `target` (a file name) is the last one applied;
    `None` undoes them all. Returns (applied, unapplied) in the order run.

    Undoing matches `aerich downgrade`: the later migrations, newest applied first,
    each in its own transaction that also deletes its `aerich` row. Applying matches
    `aerich upgrade`, stopping after `target`. Takes the migration lock.
    """
    check_migration_files(db.dialect)
    files = migration_files()
    keep = files[: files.index(target) + 1] if target else []
    db.ensure_sqlite_folder()
    async with migration_lock(db), _aerich(tortoise_config(db)) as command:
        try:
            rows = await Aerich.filter(app=APP_LABEL).order_by("-id")
        except OperationalError as exc:
            if not is_missing_table(exc):  # only "no aerich table" means "nothing applied"
                raise
            rows = []
        undo = [row for row in rows if row.version not in keep]
        if missing := [row.version for row in undo if row.version not in files]:
            raise MigrationFileError(
                f"cannot undo {missing[0]}: it is applied but has no file in "
                f"{display_path(MIGRATIONS_DIR / APP_LABEL)}"
            )
        for row in undo:
            async with in_transaction(db.dialect) as conn:
                migration = load_migration(MIGRATIONS_DIR / APP_LABEL / row.version)
                await conn.execute_script(await migration.downgrade(conn))
                await row.delete(using_db=conn)
        applied_before = {row.version for row in rows if row.version in keep}
        apply = [name for name in keep if name not in applied_before]
        for name in apply:
            if getattr(
                load_migration(MIGRATIONS_DIR / APP_LABEL / name), "RUN_IN_TRANSACTION", True
            ):
                async with in_transaction(db.dialect) as conn:
                    await command._upgrade(conn, name)
            else:
                await command._upgrade(Tortoise.get_connection(db.dialect), name)
        return apply, [row.version for row in undo]


async def ensure_schema(db: DatabaseURL, *, auto_migrate: bool) -> None:
    """Make sure the schema is current before serving.

    SQLite is the embedded single-host default, so its migrations are applied
    here; PostgreSQL deployments may run several workers, and apply them as a
    deploy step. Raises `SchemaOutOfDateError` with the command to run, and
    `MigrationFileError` for a migration file without this dialect's SQL.
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
        f"({pending[0]} .. {pending[-1]}); run `agent-runtime migrate` "
        "(or `aerich upgrade` from the project folder) with the same AGENT_RUNTIME__DB_URL"
    )
