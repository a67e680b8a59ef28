"""`agent-runtime makemigrations [NAME] [--check] [--empty]`: one file for both dialects."""

from __future__ import annotations

import subprocess

import pytest

from tests.cli.helpers import (
    FILES,
    add_session_fields,
    agent_runtime,
    columns,
    copy_migrations,
    copy_project,
    ok,
    one_line_error,
    schema,
)
from tests.fixtures.backends import ROOT, aerich_ok


def written(tmp_migrations) -> list[str]:
    return sorted(p.name for p in (tmp_migrations / "models").glob("*.py"))


def test_check_passes_when_the_models_match_and_writes_nothing(tmp_path):
    migrations = copy_migrations(tmp_path)

    result = agent_runtime("makemigrations", "--check", url="sqlite://", migrations=migrations)

    assert "No changes detected" in ok(result)
    assert written(migrations) == sorted(FILES)


async def test_a_model_change_check_fails_then_make_then_migrate_both_ways(tmp_path, empty_url):
    project = copy_project(tmp_path)
    add_session_fields(project, "    probe_at = fields.DatetimeField(null=True)")

    def run(*args: str):
        return agent_runtime(*args, url=empty_url, cwd=project)

    changed = run("makemigrations", "--check")
    files_after_check = written(project / "migrations")
    made = ok(run("makemigrations", "add_probe"))
    clean = run("makemigrations", "--check")
    applied = ok(run("migrate"))
    with_probe = await schema(empty_url)
    undone = ok(run("migrate", "--to", FILES[-1]))
    without_probe = await schema(empty_url)

    assert changed.returncode == 1
    assert "run `agent-runtime makemigrations NAME`" in changed.stdout
    assert files_after_check == sorted(FILES)  # --check writes nothing
    new = sorted(set(written(project / "migrations")) - set(FILES))
    assert len(new) == 1 and new[0].startswith(f"{len(FILES)}_")
    assert new[0].endswith("_add_probe.py")
    assert made.strip() == f"Wrote migrations/models/{new[0]} (sqlite + postgres)"
    source = (project / "migrations" / "models" / new[0]).read_text()
    assert "'sqlite': {" in source and "'postgres': {" in source
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"applied {new[0]}" in applied
    assert "probe_at" in columns(with_probe, "sessions")
    assert f"unapplied {new[0]}" in undone
    assert "probe_at" not in columns(without_probe, "sessions")
    if "postgres" in empty_url:  # the point of two dialects: PostgreSQL gets its types
        probe = next(c for c in with_probe["sessions"]["columns"] if c[0] == "probe_at")
        assert probe[2] == "timestamptz"


async def test_empty_writes_a_data_migration_that_applies_and_keeps_the_state(tmp_path, empty_url):
    project = copy_project(tmp_path)
    migrations = project / "migrations"

    def run(*args: str):
        return agent_runtime(*args, url=empty_url, cwd=project)

    made = ok(run("makemigrations", "--empty", "backfill"))
    new = sorted(set(written(migrations)) - set(FILES))
    source = (migrations / "models" / new[0]).read_text()
    upgraded = aerich_ok(empty_url, "upgrade", cwd=project)  # plain Aerich applies it too
    clean = run("makemigrations", "--check")
    undone = ok(run("migrate", "--to", FILES[-1]))
    reapplied = ok(run("migrate"))

    assert len(new) == 1 and new[0].startswith(f"{len(FILES)}_")
    assert new[0].endswith("_backfill.py")
    assert (
        made.strip()
        == f"Wrote migrations/models/{new[0]} (sqlite + postgres placeholders): write its SQL"
    )
    assert source.count("-- write your SQL here") == 2  # one per dialect
    assert "'sqlite': {" in source and "'postgres': {" in source
    last = (migrations / "models" / FILES[-1]).read_text()
    assert last[last.index("MODELS_STATE = ") :] == source[source.index("MODELS_STATE = ") :]
    assert f"Success upgrading to {new[0]}" in upgraded
    assert clean.returncode == 0 and "No changes detected" in clean.stdout
    assert f"unapplied {new[0]}" in undone
    assert f"applied {new[0]}" in reapplied


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "a migration NAME is required"),
        (("--check", "--empty"), "--check and --empty do not go together"),
        (("add probe",), "use letters, digits and underscores only"),
        (("--empty", "x-y"), "use letters, digits and underscores only"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, args, message):
    migrations = copy_migrations(tmp_path)

    result = agent_runtime("makemigrations", *args, url="sqlite://", migrations=migrations)

    assert message in one_line_error(result)
    assert written(migrations) == sorted(FILES)


def test_make_migration_runs_the_command():
    dry_run = subprocess.run(
        ["make", "-n", "migration", "name=add_probe"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert ".venv/bin/agent-runtime makemigrations add_probe" in dry_run.stdout
