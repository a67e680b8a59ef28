"""`agent-runtime makemigrations`: the next migration, for SQLite and PostgreSQL at once."""

from __future__ import annotations

import click

from agent_runtime.cli._common import fail, one_line_errors
from agent_runtime.db import makemigrations as generator
from agent_runtime.db.migrations import MIGRATIONS_DIR, display_path

__all__ = ["makemigrations"]


@click.command()
@click.argument("name", required=False)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if the models have changes without a migration (for CI).",
)
@click.option(
    "--empty",
    is_flag=True,
    help="Write a hand-written (data) migration with placeholder SQL for each dialect.",
)
def makemigrations(name: str | None = None, check: bool = False, empty: bool = False) -> None:
    """Write migrations/models/<n>_<timestamp>_NAME.py from the model changes.

    One file carries the SQL of both SQLite and PostgreSQL (Aerich, run offline once
    per dialect: no database needed). Review it, then `agent-runtime migrate`.
    Never use plain `aerich migrate`: it writes one dialect's SQL only.
    """
    if check and empty:
        fail("--check and --empty do not go together")
    if not check and not name:
        fail("a migration NAME is required, e.g. `agent-runtime makemigrations add_priority`")
    with one_line_errors():
        if check:
            made = generator.generate(name or "check", MIGRATIONS_DIR)
            if made is not None:
                click.echo(
                    "the models have changes without a migration: run "
                    "`agent-runtime makemigrations NAME`"
                )
                raise SystemExit(1)
            click.echo("No changes detected: the models match the last migration.")
            return
        assert name is not None
        if empty:
            target = generator.write_empty(name, MIGRATIONS_DIR)
            click.echo(
                f"Wrote {display_path(target)} (sqlite + postgres placeholders): write its SQL"
            )
            return
        written = generator.write_migration(name, MIGRATIONS_DIR)
    if written is None:
        click.echo("No changes detected: the models match the last migration.")
        return
    click.echo(f"Wrote {display_path(written)} (sqlite + postgres)")
