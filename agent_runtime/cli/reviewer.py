"""`agent-runtime reviewer`: who may open the reviewer console, and the key that signs
its cookies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from agent_runtime.cli._common import connected, fail, run, settings_and_database
from agent_runtime.services.console_sessions import rotate_signing_key
from agent_runtime.services.reviewers import (
    add_reviewer,
    list_reviewers,
    remove_reviewer,
    set_reviewer_password,
)
from agent_runtime.timeutils import as_utc

__all__ = ["reviewer"]

password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from stdin (one trailing newline is dropped) instead of prompting.",
)


def _read_password(from_stdin: bool) -> str:
    """From stdin as is (less one trailing newline), or typed twice without echo."""
    if from_stdin:
        # Text mode reads "\r\n" as "\n".
        return click.get_text_stream("stdin").read().removesuffix("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _when(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


@click.group()
def reviewer() -> None:
    """Manage reviewers: the people who may log in to the reviewer console and
    decide tool calls (their name is recorded as `decided_by`)."""


@reviewer.command()
@click.argument("name")
@password_stdin
def add(name: str, password_stdin: bool = False) -> None:
    """Add the reviewer NAME. Their password (8 to 1024 characters) is asked for
    twice without echo, or read from stdin with --password-stdin."""
    _, database = settings_and_database()
    password = _read_password(password_stdin)

    async def go() -> None:
        async with connected(database) as db:
            await add_reviewer(db, name, password)

    run(go(), database)
    click.echo(f"added reviewer {name}")


@reviewer.command("list")
def list_() -> None:
    """List the reviewers. One line each, by name: when they were added and when
    their password last changed (UTC)."""
    _, database = settings_and_database()

    async def go() -> list[dict[str, Any]]:
        async with connected(database) as db:
            return await list_reviewers(db)

    reviewers = run(go(), database)
    if not reviewers:
        click.echo("no reviewers")
    for r in reviewers:
        click.echo(
            f"{r['name']}  added {_when(r['created_at'])}"
            f"  password changed {_when(r['password_changed_at'])}"
        )


@reviewer.command()
@click.argument("name")
def remove(name: str) -> None:
    """Remove the reviewer NAME. Their console sessions end; the decisions they
    made keep their name."""
    _, database = settings_and_database()

    async def go() -> bool:
        async with connected(database) as db:
            return await remove_reviewer(db, name)

    if not run(go(), database):
        fail(f"no reviewer named {name!r}")
    click.echo(f"removed reviewer {name} (their console sessions ended)")


@reviewer.command("set-password")
@click.argument("name")
@password_stdin
def set_password(name: str, password_stdin: bool = False) -> None:
    """Change the password of the reviewer NAME. Their console sessions end; the
    password is asked for as by `add`."""
    _, database = settings_and_database()
    password = _read_password(password_stdin)

    async def go() -> None:
        async with connected(database) as db:
            await set_reviewer_password(db, name, password)

    run(go(), database)
    click.echo(f"password changed for {name}; their console sessions ended")


@reviewer.command("rotate-key")
def rotate_key() -> None:
    """Start signing console cookies with a new key. Cookies signed with the previous
    key keep working until the next rotation; older ones stop working."""
    _, database = settings_and_database()

    async def go() -> int:
        async with connected(database) as db:
            return await rotate_signing_key(db)

    kept = run(go(), database)
    click.echo(
        f"new console signing key in use ({kept} key(s) kept): cookies signed with the "
        "previous key keep working until the next rotation"
    )
