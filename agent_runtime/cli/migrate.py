"""`agent-runtime migrate`: apply the Aerich migrations with the service's config."""

from __future__ import annotations

import click

from agent_runtime.cli._common import run, settings_and_database
from agent_runtime.db.migrations import apply_migrations, pending_migrations


@click.command()
@click.option("--check", is_flag=True, help="Apply nothing; exit 1 if migrations are pending.")
def migrate(check: bool = False) -> None:
    """Apply pending migrations to AGENT_RUNTIME__DB_URL.

    Safe to run from several workers or replicas at once: one applies (under a
    PostgreSQL advisory lock, or a lock file beside a SQLite database), the others
    wait and find nothing left to do.
    """
    _, database = settings_and_database()
    if check:
        pending = run(pending_migrations(database), database)
        if pending:
            click.echo(f"{len(pending)} migration(s) pending on {database.display()}:")
            for name in pending:
                click.echo(f"  {name}")
            raise SystemExit(1)
        click.echo(f"schema is up to date on {database.display()}")
        return
    applied = run(apply_migrations(database), database)
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo(f"nothing to apply: schema is up to date on {database.display()}")
