"""The process's database for code that uses the service API without the app:
`init_database` connects Tortoise once, and every task of the process sees it."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from agent_runtime.config import Settings
from agent_runtime.db.config import database_url, tortoise_config
from agent_runtime.db.migrations import apply_migrations
from agent_runtime.db.urls import DatabaseURL

__all__ = ["connect", "current_database", "disconnect", "get_connection", "migrate"]

_current: DatabaseURL | None = None


async def connect(settings: Settings, url: str | None = None) -> DatabaseURL:
    """Connect Tortoise to `url` (default: the settings' database), visible to every
    task of the process, as the legacy engine was."""
    global _current
    db = database_url(settings, url)
    db.ensure_sqlite_folder()
    await Tortoise.init(config=tortoise_config(db), _enable_global_fallback=True)
    _current = db
    return db


async def migrate() -> list[str]:
    """Apply the pending migrations to the connected database; the ones applied."""
    if _current is None:
        raise RuntimeError("call init_database() before init_db()")
    return await apply_migrations(_current)


async def disconnect() -> None:
    global _current
    await Tortoise.close_connections()
    _current = None


def current_database() -> DatabaseURL:
    """The database `init_database` connected to."""
    if _current is None:
        raise RuntimeError("call init_database() first")
    return _current


def get_connection() -> BaseDBAsyncClient:
    """The connection `init_database` opened, to pass as `db`."""
    return Tortoise.get_connection(current_database().dialect)
