"""`agent-runtime key`: API keys, each with a role (agent, reviewer, admin, metrics)."""

from __future__ import annotations

from datetime import datetime

import click

from agent_runtime.cli._common import fail, on_current_database, settings_and_database
from agent_runtime.services.api_keys import add_api_key, list_api_keys, revoke_api_key
from agent_runtime.timeutils import as_utc
from models import Role

__all__ = ["key"]


def _when(value: datetime | None) -> str:
    return as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z") if value else "never"


@click.group()
def key() -> None:
    """Manage API keys. Each key has a role: `agent` (what an agent runtime needs:
    sessions, agent contexts, recording, waiting for, claiming and reporting tool
    calls), `reviewer` (reads, and decides as its reviewer account), `admin`
    (everything) or `metrics` (GET /metrics only). Give every agent its own key;
    AGENT_RUNTIME__API_KEY is an admin key, for bootstrapping."""


@key.command()
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="What the key may do.",
)
@click.option(
    "--reviewer",
    help="For --role reviewer: the reviewer account the key decides as "
    "(`agent-runtime reviewer add` makes one).",
)
def add(name: str, role: str, reviewer: str | None = None) -> None:
    """Make the key NAME. Its token is printed once, alone on the last line: store
    it now, it cannot be shown again."""
    _, database = settings_and_database()
    if role == Role.REVIEWER and reviewer is None:
        fail("--role reviewer needs --reviewer NAME (an existing reviewer account)")
    if role != Role.REVIEWER and reviewer is not None:
        fail("--reviewer only goes with --role reviewer")
    token, made = on_current_database(
        database, lambda db: add_api_key(db, name, role, reviewer=reviewer)
    )
    who = f" (decides as reviewer {made['reviewer']})" if made["reviewer"] else ""
    click.echo(f"added {role} key {made['name']}{who}; its token, shown only now:")
    click.echo(token)


@key.command("list")
def list_() -> None:
    """List the keys, one line each by name: role, reviewer account, when made and
    when last used (UTC, to the minute), when revoked. Tokens are never shown."""
    _, database = settings_and_database()
    keys = on_current_database(database, list_api_keys)
    if not keys:
        click.echo("no keys")
    for k in keys:
        reviewer = f"  reviewer {k['reviewer']}" if k["reviewer"] else ""
        revoked = f"  revoked {_when(k['revoked_at'])}" if k["revoked_at"] else ""
        click.echo(
            f"{k['name']}  {k['role']}{reviewer}  created {_when(k['created_at'])}"
            f"  last used {_when(k['last_used_at'])}{revoked}"
        )


@key.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the key NAME: within seconds it opens nothing, on every worker. It
    stays listed (revoked), and its name stays taken."""
    _, database = settings_and_database()
    if not on_current_database(database, lambda db: revoke_api_key(db, name)):
        fail(f"no key named {name!r}")
    click.echo(f"revoked key {name}")
