"""Database URL conversion: every accepted form, and clear failures."""

from __future__ import annotations

import pytest

from agent_runtime.config import Settings
from agent_runtime.db.config import database_url, direct_database_url
from agent_runtime.db.migration_lock import migration_lock
from agent_runtime.db.urls import SQLITE_ENGINE, SQLITE_PRAGMAS, parse_db_url
from agent_runtime.errors import ConfigurationError

PG = "agent_runtime.db.postgres_engine"


@pytest.mark.parametrize(
    ("url", "dialect", "engine", "expected"),
    [
        (
            "sqlite:///data/agent_runtime.db",
            "sqlite",
            SQLITE_ENGINE,
            {"file_path": "data/agent_runtime.db"},
        ),
        (
            "sqlite:////var/lib/agent/agent.db",
            "sqlite",
            SQLITE_ENGINE,
            {"file_path": "/var/lib/agent/agent.db"},
        ),
        ("sqlite+aiosqlite:///data/a.db", "sqlite", SQLITE_ENGINE, {"file_path": "data/a.db"}),
        ("sqlite+aiosqlite:////abs/a.db", "sqlite", SQLITE_ENGINE, {"file_path": "/abs/a.db"}),
        ("sqlite://", "sqlite", SQLITE_ENGINE, {"file_path": ":memory:"}),
        ("sqlite:///:memory:", "sqlite", SQLITE_ENGINE, {"file_path": ":memory:"}),
        ("sqlite://:memory:", "sqlite", SQLITE_ENGINE, {"file_path": ":memory:"}),
        ("sqlite:///my%20data/a.db", "sqlite", SQLITE_ENGINE, {"file_path": "my data/a.db"}),
        (
            "postgresql://user:secret@db.example.com:6543/agents",
            "postgres",
            PG,
            {
                "host": "db.example.com",
                "port": 6543,
                "user": "user",
                "password": "secret",
                "database": "agents",
            },
        ),
        (
            "postgresql+asyncpg://user:secret@localhost/agents",
            "postgres",
            PG,
            {
                "host": "localhost",
                "port": 5432,
                "user": "user",
                "password": "secret",
                "database": "agents",
            },
        ),
        (
            "postgres://u@127.0.0.1/agents",
            "postgres",
            PG,
            {"host": "127.0.0.1", "port": 5432, "user": "u", "database": "agents"},
        ),
        # URL-escaped password characters survive: p@ss:w/rd%#?
        (
            "postgresql://u:p%40ss%3Aw%2Frd%25%23%3F@h/db",
            "postgres",
            PG,
            {"host": "h", "user": "u", "password": "p@ss:w/rd%#?", "database": "db"},
        ),
        (
            "postgresql://u@/agents?host=/var/run/postgresql",
            "postgres",
            PG,
            {"host": "/var/run/postgresql", "database": "agents"},
        ),
        (
            "postgresql://u@h/agents?sslmode=require",
            "postgres",
            PG,
            {"host": "h", "database": "agents", "ssl": "require"},
        ),
        ("POSTGRESQL://u@h/agents", "postgres", PG, {"host": "h", "database": "agents"}),
    ],
)
def test_supported_urls_become_tortoise_connections(url, dialect, engine, expected):
    parsed = parse_db_url(url)

    assert parsed.dialect == dialect
    connection = parsed.tortoise_connection()
    assert connection["engine"] == engine
    assert expected.items() <= connection["credentials"].items()


def test_sqlite_connections_carry_the_design_note_pragmas():
    credentials = parse_db_url("sqlite:///a.db").credentials

    assert {k: credentials[k] for k in SQLITE_PRAGMAS} == {
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "cache_size": -64000,
        "temp_store": "MEMORY",
        "busy_timeout": 30000,
        "foreign_keys": "ON",
        "journal_size_limit": 16384,
    }


def test_pool_settings_reach_postgres_connections():
    credentials = parse_db_url(
        "postgresql://u@h/db",
        pool_min_size=2,
        pool_max_size=7,
        connect_timeout=3.5,
        command_timeout=12,
    ).credentials

    assert (credentials["minsize"], credentials["maxsize"]) == (2, 7)
    assert (credentials["timeout"], credentials["command_timeout"]) == (3.5, 12)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:p@h/db",
        "postgresql+psycopg2://u:p@h/db",
        "postgresq://u@h/db",
        "sqlite3:///a.db",
        "data/agent_runtime.db",
        "",
    ],
)
def test_unsupported_schemes_fail_with_one_line_naming_the_supported_ones(url):
    with pytest.raises(ConfigurationError) as info:
        parse_db_url(url)

    message = str(info.value)
    assert "\n" not in message
    assert "unsupported database URL scheme" in message
    for scheme in (
        "sqlite://",
        "sqlite+aiosqlite://",
        "postgresql://",
        "postgresql+asyncpg://",
        "postgres://",
    ):
        assert scheme in message
    assert "p@h" not in message  # no credentials echoed


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://relative-without-slash.db",
        "sqlite:///a.db?mode=ro",
        "postgresql://u@h/",
        "postgresql://u@h:notaport/db",
        "postgresql://u@h/db?application=x",
    ],
)
def test_malformed_urls_fail_with_one_clear_line(url):
    with pytest.raises(ConfigurationError) as info:
        parse_db_url(url)
    assert "\n" not in str(info.value)


def test_the_sqlite_folder_is_created(tmp_path):
    parsed = parse_db_url(f"sqlite:///{tmp_path}/nested/deeper/agent.db")

    parsed.ensure_sqlite_folder()

    assert (tmp_path / "nested" / "deeper").is_dir()
    assert not (tmp_path / "nested" / "deeper" / "agent.db").exists()


def test_in_memory_and_postgres_urls_have_no_folder_to_create():
    assert parse_db_url("sqlite://").sqlite_path is None
    assert parse_db_url("postgresql://u@h/db").sqlite_path is None


def test_behind_pgbouncer_asyncpg_keeps_no_named_prepared_statements():
    pooled = parse_db_url("postgresql://u@pgbouncer:6432/db", pooler="pgbouncer")
    direct = parse_db_url("postgresql://u@h/db")

    assert pooled.credentials["statement_cache_size"] == 0
    assert pooled.pooler == "pgbouncer"
    assert "statement_cache_size" not in direct.credentials
    # PgBouncer refuses unknown startup parameters: the URL has no way to add one.
    assert "schema" not in pooled.credentials and "server_settings" not in pooled.credentials


def test_the_direct_url_serves_session_state_for_the_settings_own_database_only():
    settings = Settings(
        db_url="postgresql://u@pgbouncer:6432/db",
        db_pooler="pgbouncer",
        db_direct_url="postgresql://u@primary:5432/db",
    )

    db = database_url(settings)
    other = database_url(settings, "postgresql://u@elsewhere/other")

    assert db.session_url.credentials["host"] == "primary"
    assert db.credentials["host"] == "pgbouncer"
    assert other.session_url is other and other.pooler == "none"
    assert direct_database_url(settings, db) == db.session_url


def test_a_sqlite_direct_url_is_refused_in_one_line():
    settings = Settings(db_url="postgresql://u@h/db", db_direct_url="sqlite:///a.db")

    with pytest.raises(ConfigurationError, match="must be a PostgreSQL URL"):
        database_url(settings)


async def test_migrations_behind_pgbouncer_without_a_direct_url_are_refused():
    db = parse_db_url("postgresql://u@127.0.0.1:1/db", pooler="pgbouncer")

    with pytest.raises(ConfigurationError, match="AGENT_RUNTIME__DB_DIRECT_URL"):
        async with migration_lock(db):
            pass
