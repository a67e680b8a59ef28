"""The plain-Aerich trap: a migration written by plain `aerich migrate` has one
dialect's SQL only. Every command that applies or checks migrations refuses it with
one line naming the file, and leaves the database schema as it was."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.helpers import FILES, add_session_fields, agent_runtime, copy_project, ok, schema
from tests.fixtures.backends import aerich

# What `aerich migrate --offline` does, on SQLite; the aerich CLI itself now refuses.
PLAIN_AERICH_MIGRATE = """
import asyncio
from aerich import Command
from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url

async def main():
    command = Command(tortoise_config(parse_db_url("sqlite://:memory:")), location="migrations")
    await command.init(offline=True)
    print(await command.migrate("probe", offline=True))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project copy whose models gained columns and whose newest migration file is
    what plain `aerich migrate` wrote for them."""
    project = copy_project(tmp_path_factory.mktemp("trap"))
    add_session_fields(
        project,
        "    probe_at = fields.DatetimeField(null=True)\n    probe = fields.JSONField(null=True)",
    )
    made = subprocess.run(
        [sys.executable, "-c", PLAIN_AERICH_MIGRATE],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    trap = made.stdout.strip()
    source = (project / "migrations" / "models" / trap).read_text()
    assert "SQL = " not in source and '"probe_at" TIMESTAMP' in source  # SQLite's SQL only
    return project


def trap_file(project) -> str:
    return next(
        p.name for p in (project / "migrations" / "models").glob("*.py") if p.name not in FILES
    )


def refusal(project, dialect: str) -> str:
    return (
        f"migrations/models/{trap_file(project)} has no SQL for {dialect} (written by plain "
        "`aerich migrate`?): delete it and run `agent-runtime makemigrations NAME`"
    )


async def test_every_command_refuses_the_file_and_changes_nothing(project, empty_url):
    ok(agent_runtime("migrate", url=empty_url))  # the real migrations: a current schema
    before = await schema(empty_url)
    dialect = "sqlite" if empty_url.startswith("sqlite") else "postgres"
    commands = [
        ("migrate",),
        ("migrate", "--check"),
        ("migrate", "--to", str(len(FILES))),
        ("migrate", "--to", "zero"),
        ("check",),
        ("showmigrations",),
        ("serve",),  # the start-up check
    ]

    results = {args: agent_runtime(*args, url=empty_url, cwd=project) for args in commands}
    upgrade = aerich(empty_url, "upgrade", cwd=project)

    for args, result in results.items():
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.splitlines() == [f"agent-runtime: error: {refusal(project, dialect)}"]
    assert upgrade.returncode == 1
    assert upgrade.stderr.strip() == f"Error: {refusal(project, dialect)}"
    assert await schema(empty_url) == before


def test_makemigrations_refuses_it_too(project):
    result = agent_runtime("makemigrations", "--check", url="sqlite://", cwd=project)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"agent-runtime: error: {refusal(project, 'sqlite')}"]


def test_plain_aerich_migrate_is_refused_with_the_command_to_use(project):
    before = sorted((project / "migrations" / "models").glob("*.py"))

    result = aerich("sqlite://:memory:", "migrate", "--name", "again", cwd=project)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: plain `aerich migrate` writes SQL for one dialect only: run "
        "`agent-runtime makemigrations NAME` (SQLite and PostgreSQL in one file)"
    )
    assert sorted((project / "migrations" / "models").glob("*.py")) == before
