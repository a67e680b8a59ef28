"""`agent-runtime migrate`: apply (or, with --to, undo) the Aerich migrations."""

from __future__ import annotations

import click

from agent_runtime.cli._common import fail, run, settings_and_database
from agent_runtime.db.migrations import (
    apply_migrations,
    find_migration,
    migrate_to,
    pending_migrations,
)

__all__ = ["migrate"]

ZERO = "zero"  # Django's spelling of "before the first migration"


@click.command()
@click.option("--check", is_flag=True, help="Apply nothing; exit 1 if migrations are pending.")
@click.option(
    "--to",
    "target",
    metavar="VERSION",
    help="Apply or undo migrations so that VERSION is the last applied: its file name, "
    "that without .py, or its number; `zero` undoes every migration.",
)
def migrate(check: bool = False, target: str | None = None) -> None:
    """Apply pending migrations to AGENT_RUNTIME__DB_URL.

    Safe to run from several workers or replicas at once: one applies (under a
    PostgreSQL advisory lock, or a lock file beside a SQLite database), the others
    wait and find nothing left to do. `--to` undoes later migrations newest first
    (like `aerich downgrade`), under the same lock: their data is lost.
    """
    _, database = settings_and_database()
    if check and target:
        fail("--check and --to do not go together")
    if target is not None:
        version = None if target == ZERO else find_migration(target)
        if target != ZERO and version is None:
            fail(
                f"no migration {target!r} in migrations/models (see `agent-runtime showmigrations`)"
            )
        applied, unapplied = run(migrate_to(database, version), database)
        for name in unapplied:
            click.echo(f"unapplied {name}")
        for name in applied:
            click.echo(f"applied {name}")
        if not applied and not unapplied:
            state = f"{version} is the last applied" if version else "no migration is applied"
            click.echo(f"nothing to do: {state} on {database.display()}")
        return
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
