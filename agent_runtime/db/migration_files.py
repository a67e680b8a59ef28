"""The migration files: where they are and whether each carries SQL for every dialect.

Below `db/config.py` (the Aerich entry point checks the files before every `aerich`
command) and `db/migrations.py` (which applies them), so neither imports the other.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType

from agent_runtime.errors import MigrationFileError

__all__ = [
    "APP_LABEL",
    "DIRECTIONS",
    "MIGRATIONS_DIR",
    "MIGRATIONS_DIR_ENV",
    "check_migration_files",
    "display_path",
    "find_migration",
    "load_migration",
    "migration_files",
]

# The Tortoise app of the models; its migrations live in MIGRATIONS_DIR / APP_LABEL.
APP_LABEL = "models"

# Tests point every command at a copy of the migrations; nothing else should need it.
MIGRATIONS_DIR_ENV = "AGENT_RUNTIME_MIGRATIONS_DIR"
# Absolute, so the service finds its migrations whatever the working directory.
MIGRATIONS_DIR = Path(
    os.environ.get(MIGRATIONS_DIR_ENV) or Path(__file__).resolve().parents[2] / "migrations"
).resolve()
DIRECTIONS = ("upgrade", "downgrade")


def migration_files(directory: Path | None = None) -> list[str]:
    """Migration file names, oldest first (Aerich orders by the leading number)."""
    files = ((directory or MIGRATIONS_DIR) / APP_LABEL).glob("*.py")
    names = [f.name for f in files if f.name.split("_", 1)[0].isdigit()]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


def display_path(path: Path) -> str:
    """`path` relative to the working directory when under it (as users typed it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# (path, mtime, size) -> the problem with the file per dialect; the readiness probe
# checks on every call, and loading every file each time would be wasteful.
_checked: dict[tuple[Path, int, int], dict[str, str | None]] = {}


def _problems(path: Path, dialects: tuple[str, ...]) -> dict[str, str | None]:
    shown = display_path(path)
    try:
        module = load_migration(path)
    except Exception as exc:
        problem = f"{shown} cannot be loaded: {type(exc).__name__}: {exc}"
        return dict.fromkeys(dialects, problem)
    sql = getattr(module, "SQL", None)
    problems: dict[str, str | None] = {}
    for dialect in dialects:
        parts = sql.get(dialect) if isinstance(sql, dict) else None
        if not isinstance(parts, dict):
            problems[dialect] = (
                f"{shown} has no SQL for {dialect} (written by plain `aerich migrate`?): "
                "delete it and run `agent-runtime makemigrations NAME`"
            )
            continue
        missing = [d for d in DIRECTIONS if not _statements(parts.get(d), dialect)]
        problems[dialect] = (
            f"{shown} has no {missing[0]} SQL for {dialect}: write it in "
            f"SQL[{dialect!r}][{missing[0]!r}] (`SELECT 1;` if there is nothing to do)"
            if missing
            else None
        )
    return problems


def _statements(sql: object, dialect: str) -> bool:
    """Whether `sql` is SQL Aerich can run on `dialect`: text, and on PostgreSQL more
    than comments (asyncpg fails on an empty query; SQLite takes it as a no-op)."""
    if not isinstance(sql, str) or not sql.strip():
        return False
    if dialect != "postgres":
        return True
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/|[\s;]", "", sql, flags=re.DOTALL))


def check_migration_files(*dialects: str, directory: Path | None = None) -> None:
    """Refuse migration files that lack SQL for one of `dialects`.

    Every migration here carries a module-level `SQL = {dialect: {"upgrade": ...,
    "downgrade": ...}}`. Plain `aerich migrate` writes one dialect's SQL only: applied
    to the other database it would "succeed" with a wrong schema. Raises
    `MigrationFileError` naming the first such file, before anything is applied.
    """
    folder = (directory or MIGRATIONS_DIR) / APP_LABEL
    for name in migration_files(directory):
        path = folder / name
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size)
        known = _checked.setdefault(key, {})
        if unknown := tuple(d for d in dialects if d not in known):
            known.update(_problems(path, unknown))
        for dialect in dialects:
            if problem := known[dialect]:
                raise MigrationFileError(problem)


def find_migration(spec: str) -> str | None:
    """The migration file `spec` names: its file name, that without `.py`, or its number."""
    for name in migration_files():
        number = name.split("_", 1)[0]
        if spec in (name, name.removesuffix(".py")) or (
            spec.isdigit() and int(spec) == int(number)
        ):
            return name
    return None


def load_migration(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
