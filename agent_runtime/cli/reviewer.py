"""`agent-runtime reviewer`: who may open the reviewer console, and the key that signs
its cookies."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import click
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.cli._common import connected, fail, run, settings_and_database
from agent_runtime.db.migrations import pending_on_connection
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.errors import SchemaOutOfDateError
from agent_runtime.services.console_sessions import rotate_signing_key
from agent_runtime.services.reviewers import (
    add_reviewer,
    list_reviewers,
    remove_reviewer,
    set_reviewer_password,
)
from agent_runtime.timeutils import as_utc

__all__ = ["reviewer"]

T = TypeVar("T")

password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from stdin (one trailing newline is dropped) instead of prompting.",
)


def _read_password(from_stdin: bool) -> str:
    """From stdin as is (less one trailing newline), or typed twice without echo."""
    if from_stdin:
        # Text mode reads "\r\n" as "\n".
        return sys.stdin.read().removesuffix("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _on_database(database: DatabaseURL, work: Callable[[BaseDBAsyncClient], Awaitable[T]]) -> T:
    """`work(db)` on `database` once its schema is current; expected failures
    (pending migrations included) end the command in one line."""

    async def go() -> T:
        async with connected(database) as db:
            if pending := await pending_on_connection(db):
                raise SchemaOutOfDateError(
                    f"database schema is behind: {len(pending)} migration(s) pending; "
                    "run `agent-runtime migrate` first"
                )
            return await work(db)

    return run(go(), database)


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
    """Add the reviewer NAME. Names are case-insensitive: NAME is stored case-folded
    (Unicode NFKC), without surrounding spaces, and a name differing only in case is
    taken. Their password (8 to 1024 characters) is asked for twice without echo,
    or read from stdin with --password-stdin."""
    _, database = settings_and_database()
    password = _read_password(password_stdin)
    added = _on_database(database, lambda db: add_reviewer(db, name, password))
    click.echo(f"added reviewer {added['name']}")


@reviewer.command("list")
def list_() -> None:
    """List the reviewers. One line each, by name: when they were added and when
    their password last changed (UTC)."""
    _, database = settings_and_database()
    reviewers = _on_database(database, list_reviewers)
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
    """Remove the reviewer NAME (in any case). Their console sessions end; the
    decisions they made keep their name."""
    _, database = settings_and_database()
    if not _on_database(database, lambda db: remove_reviewer(db, name)):
        fail(f"no reviewer named {name!r}")
    click.echo(f"removed reviewer {name} (their console sessions ended)")


@reviewer.command("set-password")
@click.argument("name")
@password_stdin
def set_password(name: str, password_stdin: bool = False) -> None:
    """Change the password of the reviewer NAME (in any case). Their console sessions
    end; the password is asked for as by `add`."""
    _, database = settings_and_database()
    password = _read_password(password_stdin)
    _on_database(database, lambda db: set_reviewer_password(db, name, password))
    click.echo(f"password changed for {name}; their console sessions ended")


@reviewer.command("rotate-key")
def rotate_key() -> None:
    """Start signing console cookies with a new key. Cookies signed with the previous
    key keep working until the next rotation; older ones stop working."""
    _, database = settings_and_database()
    kept = _on_database(database, rotate_signing_key)
    click.echo(
        f"new console signing key in use ({kept} key(s) kept): cookies signed with the "
        "previous key keep working until the next rotation"
    )
