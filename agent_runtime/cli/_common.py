"""What every command shares: settings, the database, and one-line failures."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn, TypeVar

import click
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.config import Settings, settings_or_exit
from agent_runtime.db.config import database_url, tortoise_config
from agent_runtime.db.errors import is_database_unavailable
from agent_runtime.db.migrations import pending_on_connection
from agent_runtime.db.urls import DatabaseURL
from agent_runtime.errors import AgentRuntimeError, SchemaOutOfDateError

__all__ = [
    "connected",
    "fail",
    "on_current_database",
    "one_line_errors",
    "run",
    "settings_and_database",
]

T = TypeVar("T")
logger = logging.getLogger("agent_runtime")


def fail(message: str, code: int = 1) -> NoReturn:
    """Expected failures end with one line on stderr and a non-zero exit code."""
    click.echo(f"agent-runtime: error: {message}", err=True)
    sys.exit(code)


def settings_and_database(url: str | None = None) -> tuple[Settings, DatabaseURL]:
    settings = settings_or_exit()
    try:
        return settings, database_url(settings, url)
    except AgentRuntimeError as exc:
        fail(str(exc))


@contextmanager
def one_line_errors(database: DatabaseURL | None = None) -> Iterator[None]:
    """Turn expected failures (bad input, bad migration file, database down) into one line."""
    try:
        yield
    except AgentRuntimeError as exc:
        fail(str(exc))
    except Exception as exc:
        if is_database_unavailable(exc):
            where = f" at {database.display()}" if database else ""
            fail(f"cannot reach the database{where}: {type(exc).__name__}: {exc}".strip())
        raise


def run(coro: Coroutine[Any, Any, T], database: DatabaseURL | None = None) -> T:
    """Run `coro`; turn expected failures into one line."""
    with one_line_errors(database):
        return asyncio.run(coro)


@asynccontextmanager
async def connected(database: DatabaseURL) -> AsyncIterator[BaseDBAsyncClient]:
    """A Tortoise connection for the length of a command."""
    database.ensure_sqlite_folder()
    await Tortoise.init(config=tortoise_config(database))
    try:
        yield Tortoise.get_connection(database.dialect)
    finally:
        await Tortoise.close_connections()


def on_current_database(
    database: DatabaseURL, work: Callable[[BaseDBAsyncClient], Awaitable[T]]
) -> T:
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
