"""The Tortoise configuration, built from settings; `TORTOISE_ORM` is what Aerich reads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent_runtime.config import Settings, get_settings
from agent_runtime.db.migration_files import APP_LABEL, check_migration_files
from agent_runtime.db.urls import DatabaseURL, parse_db_url
from agent_runtime.errors import AgentRuntimeError, ConfigurationError

# and the lazy TORTOISE_ORM
__all__ = ["APP_LABEL", "database_url", "direct_database_url", "tortoise_config"]


def database_url(settings: Settings | None = None, url: str | None = None) -> DatabaseURL:
    """The database of `settings` (or `url`), with its pooler mode and, for the
    settings' own database, its direct URL."""
    settings = settings or get_settings()
    own = url is None or url == settings.db_url
    db = parse_db_url(
        url or settings.db_url,
        pool_min_size=settings.db_pool_min_size,
        pool_max_size=settings.db_pool_max_size,
        connect_timeout=settings.db_connect_timeout,
        command_timeout=settings.db_command_timeout,
        pooler=settings.db_pooler if own else "none",
    )
    if db.is_sqlite or not own or settings.db_direct_url is None:
        return db
    direct = parse_db_url(settings.db_direct_url, connect_timeout=settings.db_connect_timeout)
    if direct.is_sqlite:
        raise ConfigurationError("AGENT_RUNTIME__DB_DIRECT_URL must be a PostgreSQL URL")
    return replace(db, direct=direct)


def direct_database_url(settings: Settings, db: DatabaseURL) -> DatabaseURL | None:
    """Where to LISTEN: `AGENT_RUNTIME__DB_DIRECT_URL`, else the main database; None
    for SQLite (nothing to listen to)."""
    return None if db.is_sqlite else db.session_url


def tortoise_config(db: DatabaseURL) -> dict[str, Any]:
    """Tortoise config for `db`.

    The connection is named after the dialect: Tortoise caches query executors
    by connection name, so a SQLite and a PostgreSQL connection sharing a name
    in one process would reuse each other's SQL placeholders.
    """
    return {
        "connections": {db.dialect: db.tortoise_connection()},
        "apps": {
            APP_LABEL: {
                "models": ["models", "aerich.models"],
                "default_connection": db.dialect,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _for_aerich() -> dict[str, Any]:
    """`TORTOISE_ORM`, as the `aerich` command reads it.

    This is the one hook every `aerich` command passes through: it refuses plain
    `aerich migrate` (one dialect's SQL only) and migration files without this
    database's SQL, as a ClickException, which the aerich CLI prints as one
    `Error: ...` line with exit code 1 (anything else would be a traceback).
    """
    import asyncclick

    aerich = asyncclick.get_current_context(silent=True)
    try:
        if aerich is not None and aerich.invoked_subcommand == "migrate":
            raise ConfigurationError(
                "plain `aerich migrate` writes SQL for one dialect only: run "
                "`agent-runtime makemigrations NAME` (SQLite and PostgreSQL in one file)"
            )
        db = database_url()
        check_migration_files(db.dialect)
        db.ensure_sqlite_folder()
    except AgentRuntimeError as exc:
        if aerich is None:
            raise
        raise asyncclick.ClickException(str(exc)) from None
    return tortoise_config(db)


def __getattr__(name: str) -> Any:
    # `TORTOISE_ORM` is computed on access so that importing this module never
    # fails on a bad URL; Aerich reads it through `[tool.aerich]` in pyproject.toml.
    if name == "TORTOISE_ORM":
        return _for_aerich()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
