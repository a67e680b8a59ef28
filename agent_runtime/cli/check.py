"""`agent-runtime check`: configuration, connection, schema, database settings."""

from __future__ import annotations

from typing import Any

import click

from agent_runtime.cli._common import connected, run, settings_and_database
from agent_runtime.db.migrations import migration_files, pending_on_connection
from agent_runtime.db.urls import DatabaseURL

_PRAGMAS = (
    "journal_mode",
    "synchronous",
    "cache_size",
    "temp_store",
    "busy_timeout",
    "foreign_keys",
)


async def _inspect(database: DatabaseURL) -> dict[str, Any]:
    async with connected(database) as db:
        facts: dict[str, Any] = {"pending": await pending_on_connection(db)}
        if database.is_sqlite:
            facts["pragmas"] = {
                name: next(iter((await db.execute_query_dict(f"PRAGMA {name}"))[0].values()))
                for name in _PRAGMAS
            }
        else:
            facts["server"] = (await db.execute_query_dict("SHOW server_version"))[0][
                "server_version"
            ]
        return facts


def pooler_report(database: DatabaseURL) -> list[str]:
    """The pooler mode, and a warning for each setting that breaks behind it."""
    if database.is_sqlite:
        return []
    if database.pooler == "none":
        return ["pooler: none (direct PostgreSQL connections)"]
    direct = database.direct
    lines = [
        f"pooler: {database.pooler} (transaction pooling: no named prepared statements; "
        + (f"LISTEN and the migration lock on {direct.display()})" if direct else "no direct URL)")
    ]
    if direct is None:
        lines.append(
            "warning: AGENT_RUNTIME__DB_DIRECT_URL is not set: `agent-runtime migrate` "
            "refuses to run (its lock needs a session), and waits and the event stream "
            "poll the log instead of LISTEN (slower wake-ups)"
        )
    return lines


@click.command()
def check() -> None:
    """Validate the configuration, connect, and report the schema state and the SQLite
    pragmas or PostgreSQL server version. Exits 1 if anything needs attention."""
    settings, database = settings_and_database()
    click.echo(
        f"config: ok (database {database.display()}, API key "
        f"{'set' if settings.api_key else 'not set'})"
    )
    for line in pooler_report(database):
        click.echo(line)
    facts = run(_inspect(database), database)
    if database.is_sqlite:
        pragmas = " ".join(f"{k}={v}" for k, v in facts["pragmas"].items())
        click.echo(f"database: SQLite, {pragmas}")
    else:
        click.echo(f"database: PostgreSQL {facts['server']}")
    pending = facts["pending"]
    applied = len(migration_files()) - len(pending)
    if pending:
        click.echo(
            f"schema: {len(pending)} migration(s) pending: {', '.join(pending)}; "
            "run `agent-runtime migrate`"
        )
        raise SystemExit(1)
    click.echo(f"schema: up to date ({applied} migration(s) applied)")
