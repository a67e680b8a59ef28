"""Start-up and shutdown: schema checks, auto-migration of SQLite, closed connections."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise import Tortoise

from agent_runtime.config import Settings
from agent_runtime.db.migrations import pending_migrations
from agent_runtime.db.urls import parse_db_url
from agent_runtime.errors import ConfigurationError, SchemaOutOfDateError
from agent_runtime.main import create_app
from tests.fixtures.backends import BACKENDS, ROOT


@pytest.fixture(params=BACKENDS)
def empty_url(request, databases):
    if request.param == "postgres":
        request.applymarker("postgres")
    return databases.empty(request.param)


async def test_sqlite_schema_is_migrated_at_startup(databases, tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/agent.db"

    async with LifespanManager(create_app(Settings(db_url=url))):
        pass

    assert await pending_migrations(parse_db_url(url)) == []


async def test_schema_behind_is_reported_in_one_line_with_the_command_to_run(empty_url, caplog):
    app = create_app(Settings(db_url=empty_url, auto_migrate=False))

    with (
        caplog.at_level(logging.ERROR, logger="agent_runtime"),
        pytest.raises(SchemaOutOfDateError),
    ):
        async with LifespanManager(app):
            pass

    lines = [r.getMessage() for r in caplog.records if r.name == "agent_runtime"]
    assert len(lines) == 1
    assert "schema is behind" in lines[0] and "aerich upgrade" in lines[0]
    assert "\n" not in lines[0]


@pytest.mark.postgres
async def test_postgres_is_never_migrated_implicitly(databases):
    url = databases.empty("postgres")

    with pytest.raises(SchemaOutOfDateError):
        async with LifespanManager(create_app(Settings(db_url=url, auto_migrate=True))):
            pass
    assert len(await pending_migrations(parse_db_url(url))) >= 1


async def test_connections_are_closed_at_shutdown(backend):
    app = create_app(Settings(**backend.settings))
    async with LifespanManager(app):
        connection = Tortoise.get_connection(backend.dialect)
        await connection.execute_query("SELECT 1")

    if backend.name == "sqlite":
        assert connection._connection is None
    else:
        assert connection._pool is None
    with pytest.raises(Exception, match=r"not initialized|No TortoiseContext|context"):
        Tortoise.get_connection(backend.dialect)


def test_bad_database_url_fails_app_creation_with_one_line():
    with pytest.raises(ConfigurationError) as info:
        create_app(Settings(db_url="mysql://root@localhost/agents"))
    assert "\n" not in str(info.value)


def test_serving_with_a_bad_url_exits_with_one_clear_line():
    env = {**os.environ, "AGENT_RUNTIME__DB_URL": "mysql://root:pw@localhost/agents"}
    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unsupported database URL scheme 'mysql'" in result.stderr
    assert "pw" not in result.stderr


async def test_an_unreachable_database_at_startup_is_reported_as_such_and_readiness_is_503(
    caplog,
):
    # Nothing listens on port 1: the schema check cannot connect.
    settings = Settings(db_url="postgresql://postgres@127.0.0.1:1/x", db_connect_timeout=2)
    app = create_app(settings)

    with caplog.at_level(logging.ERROR, logger="agent_runtime"):
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "unavailable"
    lines = [r.getMessage() for r in caplog.records if r.name == "agent_runtime"]
    assert len(lines) == 1, lines
    assert "database unreachable at postgresql://postgres@127.0.0.1:1/x" in lines[0]
    assert "\n" not in lines[0]
    assert not any("schema is behind" in r.getMessage() for r in caplog.records)


async def test_the_start_up_log_is_one_clean_story(backend, tmp_path, caplog):
    """No shutdown line before anything started (Aerich's private connections of the
    schema check, Tortoise's FastAPI integration), one line when connected and one
    when closed."""
    fresh = f"sqlite:///{tmp_path}/fresh/agent.db"  # auto-migrated: Aerich runs twice
    for settings in (Settings(db_url=fresh), Settings(**backend.settings)):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            async with LifespanManager(create_app(settings)):
                started = [r.getMessage() for r in caplog.records]
        lines = [r.getMessage() for r in caplog.records]

        assert not any("shutdown" in line.lower() for line in started), started
        assert [line for line in started if line.endswith(": connected")] == [
            f"database {parse_db_url(settings.db_url).display()}: connected"
        ]
        assert [line for line in lines if "closed" in line] == [
            f"database {parse_db_url(settings.db_url).display()}: connections closed"
        ]
        assert not any("Tortoise-ORM" in line for line in lines), lines
