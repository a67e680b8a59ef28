"""`agent-runtime showmigrations`: every migration file, applied or pending."""

from __future__ import annotations

import click

from agent_runtime.cli._common import connected, run, settings_and_database
from agent_runtime.db.migrations import (
    applied_on_connection,
    check_migration_files,
    migration_files,
)
from agent_runtime.db.urls import DatabaseURL

__all__ = ["showmigrations"]


async def _applied(database: DatabaseURL) -> list[str]:
    check_migration_files(database.dialect)
    async with connected(database) as db:
        return await applied_on_connection(db)


@click.command()
def showmigrations() -> None:
    """List the migration files, oldest first: [X] applied, [ ] pending, against
    AGENT_RUNTIME__DB_URL (an empty database has them all pending)."""
    _, database = settings_and_database()
    applied = run(_applied(database), database)
    files = migration_files()
    click.echo(f"models ({database.display()})")
    for name in files:
        click.echo(f" [{'X' if name in applied else ' '}] {name}")
    # Applied by another checkout, or deleted since: `migrate --to` cannot undo these.
    for name in applied:
        if name not in files:
            click.echo(f" [X] {name} (applied, but no such file)")
    done = sum(name in applied for name in files)
    click.echo(f"{done} applied, {len(files) - done} pending")
