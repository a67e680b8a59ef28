"""Turn a database URL into a Tortoise connection description.

Tortoise's own URL parser is not used: it does not know `postgresql+asyncpg://`
or `sqlite+aiosqlite://`, and SQLAlchemy-style URLs are what users of the legacy
service already have in their environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from agent_runtime.errors import ConfigurationError

__all__ = [
    "SQLITE_ENGINE",
    "SQLITE_PRAGMAS",
    "SUPPORTED_SCHEMES",
    "DatabaseURL",
    "parse_db_url",
]

SQLITE_ENGINE = "agent_runtime.db.sqlite_engine"
POSTGRES_ENGINE = "agent_runtime.db.postgres_engine"

# Design note, section 4. Tortoise runs every extra credential as `PRAGMA k=v`.
SQLITE_PRAGMAS: dict[str, Any] = {
    "journal_mode": "WAL",
    "synchronous": "NORMAL",
    "cache_size": -64000,
    "temp_store": "MEMORY",
    "busy_timeout": 30000,
    "foreign_keys": "ON",
    "journal_size_limit": 16384,
}

_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
_POSTGRES_SCHEMES = ("postgresql", "postgresql+asyncpg", "postgres")
SUPPORTED_SCHEMES = _SQLITE_SCHEMES + _POSTGRES_SCHEMES
_MEMORY = ":memory:"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL: the dialect and the Tortoise connection dict."""

    dialect: str  # "sqlite" or "postgres", as Tortoise's `capabilities.dialect`
    engine: str
    credentials: dict[str, Any] = field(default_factory=dict)
    pooler: str = "none"  # "pgbouncer": a transaction pooler sits in front of PostgreSQL
    # PostgreSQL reached directly, for session state a transaction pooler cannot
    # carry (LISTEN, the migration lock); None: this URL is direct.
    direct: DatabaseURL | None = None

    @property
    def session_url(self) -> DatabaseURL:
        """Where a session-level feature (LISTEN, an advisory lock) must connect."""
        return self.direct or self

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, or None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite or self.credentials["file_path"] == _MEMORY:
            return None
        return Path(self.credentials["file_path"])

    def tortoise_connection(self) -> dict[str, Any]:
        return {"engine": self.engine, "credentials": dict(self.credentials)}

    def display(self) -> str:
        """Where the database is, for messages: never the password."""
        if self.is_sqlite:
            return f"sqlite:///{self.credentials['file_path']}"
        c = self.credentials
        user = f"{c['user']}@" if c.get("user") else ""
        return f"postgresql://{user}{c['host']}:{c['port']}/{c['database']}"

    def asyncpg_connect_args(self) -> dict[str, Any]:
        """Arguments for a direct `asyncpg.connect()` outside Tortoise's pool."""
        c = self.credentials
        return {
            "host": c["host"],
            "port": c["port"],
            "user": c.get("user"),
            "password": c.get("password"),
            "database": c["database"],
            "ssl": c.get("ssl"),
            "timeout": c.get("timeout", 10),
        }

    def ensure_sqlite_folder(self) -> None:
        """Create the folder of the SQLite file so that the first connect succeeds."""
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)


def parse_db_url(
    url: str,
    *,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    connect_timeout: float = 10.0,
    command_timeout: float = 30.0,
    pooler: str = "none",
) -> DatabaseURL:
    """Parse `url`; raise `ConfigurationError` (one line, no password) if unsupported.

    `pooler="pgbouncer"`: PostgreSQL is reached through a transaction pooler, so
    asyncpg keeps no named prepared statements (a statement prepared on one server
    connection would be looked for on another).
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SUPPORTED_SCHEMES:
        shown = scheme if sep else url.split(":", 1)[0][:40]
        raise ConfigurationError(
            f"unsupported database URL scheme {shown!r} in AGENT_RUNTIME__DB_URL; "
            f"supported: {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    if scheme in _SQLITE_SCHEMES:
        return _parse_sqlite(url)
    db = _parse_postgres(url, pool_min_size, pool_max_size, connect_timeout, command_timeout)
    if pooler == "pgbouncer":
        # PgBouncer before 1.21 cannot carry named prepared statements across
        # transactions; unnamed ones (parse, bind, execute in one go) pass.
        db.credentials["statement_cache_size"] = 0
    return DatabaseURL(db.dialect, db.engine, db.credentials, pooler=pooler)


def _parse_sqlite(url: str) -> DatabaseURL:
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    if rest in ("", _MEMORY, "/" + _MEMORY):
        path = _MEMORY
    elif rest.startswith("/"):
        # SQLAlchemy form: sqlite:///relative.db, sqlite:////absolute.db.
        path = unquote(rest[1:])
    else:
        raise ConfigurationError(
            f"SQLite URL must look like sqlite:///relative.db or sqlite:////absolute.db, "
            f"got {url!r}"
        )
    if not path:
        raise ConfigurationError("SQLite URL has no file path: use sqlite:///data/file.db")
    credentials: dict[str, Any] = {"file_path": path, **SQLITE_PRAGMAS}
    if query:
        raise ConfigurationError(
            "SQLite URL query parameters are not supported; the service sets its own pragmas"
        )
    return DatabaseURL("sqlite", SQLITE_ENGINE, credentials)


def _parse_postgres(
    url: str,
    pool_min_size: int,
    pool_max_size: int,
    connect_timeout: float,
    command_timeout: float,
) -> DatabaseURL:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigurationError(f"invalid port in AGENT_RUNTIME__DB_URL: {exc}") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError("PostgreSQL URL has no database name: postgresql://host/dbname")
    credentials: dict[str, Any] = {
        "host": query.pop("host", None) or unquote(parts.hostname or "") or "localhost",
        "port": port,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "database": database,
        "minsize": pool_min_size,
        "maxsize": pool_max_size,
        "timeout": connect_timeout,
        "command_timeout": command_timeout,
        "application_name": "agent-runtime",
    }
    if "sslmode" in query or "ssl" in query:
        credentials["ssl"] = query.pop("sslmode", None) or query.pop("ssl")
    if query:
        raise ConfigurationError(
            f"unsupported PostgreSQL URL parameters: {', '.join(sorted(query))} "
            "(supported: host, sslmode)"
        )
    credentials = {k: v for k, v in credentials.items() if v is not None}
    return DatabaseURL("postgres", POSTGRES_ENGINE, credentials)
