"""Run the real `agent-runtime` CLI in a subprocess; copy the project for tests that write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.migrations import MIGRATIONS_DIR_ENV, migration_files
from agent_runtime.db.urls import parse_db_url
from tests.db.schema import describe
from tests.fixtures.backends import ROOT

FILES = migration_files()  # the real migrations, oldest first


def agent_runtime(
    *args: str,
    url: str,
    cwd: Path = ROOT,
    input: str | None = None,
    migrations: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`agent-runtime ARGS` against `url`; `migrations`: a copy of the migrations folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME")}
    env["AGENT_RUNTIME__DB_URL"] = url
    if migrations is not None:
        env[MIGRATIONS_DIR_ENV] = str(migrations)
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of an expected failure (non-zero exit, no traceback)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def copy_migrations(tmp: Path) -> Path:
    target = tmp / "migrations"
    shutil.copytree(ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def copy_project(tmp: Path) -> Path:
    """A copy of the code, models, migrations and pyproject.toml: commands run in it
    (cwd) import this copy, so it may get new model fields and migration files."""
    project = tmp / "project"
    for part in ("agent_runtime", "models", "migrations"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project)
    return project


def add_session_fields(project: Path, fields: str) -> None:
    """Add model fields (source lines) to Session in `project`."""
    model = project / "models" / "session.py"
    text = model.read_text()
    model.write_text(text.replace("    class Meta:", f"{fields}\n\n    class Meta:", 1))


async def schema(url: str) -> dict:
    database = parse_db_url(url)
    database.ensure_sqlite_folder()
    await Tortoise.init(config=tortoise_config(database))
    try:
        return await describe(Tortoise.get_connection(database.dialect))
    finally:
        await Tortoise.close_connections()


def columns(described: dict, table: str) -> list[str]:
    return [c[0] for c in described.get(table, {}).get("columns", [])]
