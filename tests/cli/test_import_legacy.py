"""`agent-runtime import-legacy`: legacy SQLite and PostgreSQL sources (both variants)
into the service's database on both backends; progress, summary, one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent_runtime.cli import cli
from agent_runtime.config import get_settings
from agent_runtime.services.legacy_import import importer
from tests.cli.helpers import agent_runtime
from tests.fixtures.backends import DATA_TABLES, TABLES, Backend, Databases
from tests.fixtures.legacy import (
    LEGACY_PARAMS,
    LegacyConnection,
    LegacyDatabase,
    create_legacy_database,
    drop_legacy_database,
    fetch_sync,
    legacy_id,
    sql_sync,
)

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123)  # naive UTC, as the legacy stored it
T1 = T0 + timedelta(seconds=1)


@pytest.fixture(params=LEGACY_PARAMS, ids=legacy_id)
def legacy_db(
    request: pytest.FixtureRequest, databases: Databases, tmp_path: Path
) -> Iterator[LegacyDatabase]:
    kind, variant = request.param
    legacy = create_legacy_database(kind, variant, tmp_path, databases)
    yield legacy
    drop_legacy_database(legacy)


def use_target(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RUNTIME__DB_URL", url)
    get_settings.cache_clear()


@pytest.fixture
def target(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The backend's migrated database, emptied, as AGENT_RUNTIME__DB_URL."""
    if backend.name == "postgres":
        sql_sync(backend.url, f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    else:
        sql_sync(backend.url, "".join(f"DELETE FROM {t};" for t in TABLES))
    use_target(backend.url, monkeypatch)
    yield backend.url
    get_settings.cache_clear()


def fill(legacy_db: LegacyDatabase, write: Callable[[LegacyConnection], Awaitable[None]]) -> None:
    async def go() -> None:
        async with legacy_db.connect() as legacy:
            await write(legacy)

    asyncio.run(go())


async def some_sessions(legacy: LegacyConnection) -> None:
    await legacy.legacy_save_session(
        "chat-1",
        [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "bye"},
        ],
        T0,
    )
    db_id = await legacy.legacy_save_session("chat-2", [{"role": "user", "content": "x"}], T0)
    context = await legacy.add_context(db_id, "billing", created_at=T0)
    await legacy.add_switch(context, "triage", "billing", T1)
    await legacy.add_session("gone", created_at=T0, is_active=False, deleted_at=T1)
    await legacy.add_approval("chat-1", "call-1", "rm", {"p": 1}, created_at=T0)
    await legacy.add_approval("chat-1", "call-1", "rm", {"p": 1}, created_at=T1, status="approved")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="agent-runtime")


def counts(url: str) -> dict[str, int]:
    return {t: fetch_sync(url, f"SELECT COUNT(*) FROM {t}")[0][0] for t in DATA_TABLES}


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agent-runtime: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_import_shows_progress_and_summary_then_rerun_skips_everything(legacy_db, target):
    fill(legacy_db, some_sessions)

    first = invoke("import-legacy", "--from", legacy_db.url)

    assert first.exit_code == 0, first.output
    assert f"importing 3 session(s) from {legacy_db.url}" in first.stderr
    assert f"(legacy variant {legacy_db.variant})" in first.stderr
    assert "sessions" in first.stderr.splitlines()[1]  # the progress bar's label
    out = first.stdout
    assert "import done in" in out
    assert "sessions:        3 imported, 0 skipped (already present)" in out
    assert "messages:        4 imported" in out
    assert "agent contexts:  1 imported" in out
    assert "agent switches:  1 imported" in out
    assert "approvals:       1 imported, 0 skipped" in out
    assert "duplicate call_ids merged: 1 (1 extra legacy row(s) folded in)" in out
    assert "call_id 'call-1': 2 rows merged into one (approved)" in out
    assert "invalid rows skipped: 0" in out
    imported = counts(target)
    assert imported == {
        "messages": 4,
        "agent_switches": 1,
        "agent_contexts": 1,
        "sessions": 3,
        "pending_approvals": 1,
        "events": 0,  # the legacy store kept no history: an import invents none
    }
    rows = fetch_sync(target, "SELECT id, deleted_at IS NOT NULL FROM sessions ORDER BY id")
    assert [(r[0], bool(r[1])) for r in rows] == [
        ("chat-1", False),
        ("chat-2", False),
        ("gone", True),
    ]

    again = invoke("import-legacy", "--from", legacy_db.url)

    assert again.exit_code == 0, again.output
    assert "sessions:        0 imported, 3 skipped (already present)" in again.stdout
    assert "messages:        0 imported" in again.stdout
    assert "approvals:       0 imported, 1 skipped" in again.stdout
    assert "duplicate call_ids merged: 0" in again.stdout
    assert counts(target) == imported


def test_dry_run_reports_and_writes_nothing(legacy_db, target):
    fill(legacy_db, some_sessions)

    result = invoke("import-legacy", "--from", legacy_db.url, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run: checking 3 session(s)" in result.stderr
    assert "dry run (nothing written)" in result.stdout
    assert "sessions:        3 would be imported" in result.stdout
    assert "messages:        4 would be imported" in result.stdout
    assert "approvals:       1 would be imported" in result.stdout
    assert set(counts(target).values()) == {0}


def test_invalid_rows_are_listed_and_do_not_fail_the_import(legacy_db, target):
    async def write(legacy: LegacyConnection) -> None:
        await legacy.without_role_check()
        db_id = await legacy.add_session("s", created_at=T0)
        await legacy.add_messages(
            db_id,
            [{"role": "user", "content": "ok"}, {"role": "wizard", "content": "no", "id": "m-bad"}],
            T0,
        )

    fill(legacy_db, write)

    result = invoke("import-legacy", "--from", legacy_db.url)

    assert result.exit_code == 0, result.output
    assert "invalid rows skipped: 1" in result.stdout
    assert "messages m-bad: role 'wizard' is not one of" in result.stdout
    assert "messages:        1 imported" in result.stdout


def test_help():
    result = invoke("import-legacy", "--help")

    assert result.exit_code == 0
    assert "--from URL" in result.stdout and "--dry-run" in result.stdout


def test_from_is_required(target):
    result = invoke("import-legacy")

    assert result.exit_code == 2
    assert "Missing option '--from'" in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("mysql://user@host/db", "unsupported database URL scheme 'mysql' in the legacy"),
        ("sqlite:///{tmp}/missing.db", "no legacy database at"),
        ("sqlite://", "cannot be in memory"),
        ("sqlite:///{tmp}/not-a-database.db", "file is not a database"),
        (
            "postgresql://someone:s3cret@127.0.0.1:1/legacy",
            "cannot reach the legacy database at postgresql://someone@127.0.0.1:1/legacy",
        ),
    ],
)
def test_bad_sources_fail_with_one_line(source, message, target, tmp_path):
    (tmp_path / "not-a-database.db").write_text("hello, not SQLite\n" * 100)

    result = invoke("import-legacy", "--from", source.format(tmp=tmp_path))

    line = one_error_line(result)
    assert message in line
    assert "s3cret" not in result.output
    assert not (tmp_path / "missing.db").exists()  # never created


def test_a_database_that_is_not_legacy_fails_with_one_line(target):
    result = invoke("import-legacy", "--from", target)  # this service's own schema

    assert "is not a legacy agent-runtime database" in one_error_line(result)


def test_target_schema_behind_says_to_migrate(backend, databases, monkeypatch, tmp_path):
    use_target(databases.empty(backend.name), monkeypatch)

    result = invoke("import-legacy", "--from", f"sqlite:///{tmp_path}/legacy.db")

    line = one_error_line(result)
    assert "migration(s) pending" in line and "run `agent-runtime migrate`" in line
    get_settings.cache_clear()


def test_unreachable_target_fails_with_one_line(monkeypatch, tmp_path):
    use_target("postgresql://someone:s3cret@127.0.0.1:1/agents", monkeypatch)

    result = invoke("import-legacy", "--from", f"sqlite:///{tmp_path}/legacy.db")

    assert "cannot reach the database at postgresql://someone@127.0.0.1:1/agents" in (
        one_error_line(result)
    )
    assert "s3cret" not in result.output
    get_settings.cache_clear()


def test_as_a_process(legacy_db, target, tmp_path):
    """The real command: exit codes, stderr progress, stdout summary, no traceback."""
    fill(legacy_db, some_sessions)

    done = agent_runtime("import-legacy", "--from", legacy_db.url, url=target)
    missing = agent_runtime("import-legacy", "--from", f"sqlite:///{tmp_path}/nope.db", url=target)

    assert done.returncode == 0, done.stderr
    assert "importing 3 session(s)" in done.stderr
    assert "sessions:        3 imported" in done.stdout
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"agent-runtime: error: no legacy database at {tmp_path}/nope.db: no such file"
    ]
    assert missing.stdout == ""


def test_a_failed_session_gives_the_summary_and_exit_code_1(legacy_db, target, monkeypatch):
    fill(legacy_db, some_sessions)
    monkeypatch.setattr(importer, "INSERT_SWITCH", "INSERT INTO no_such_table VALUES (?)")

    result = invoke("import-legacy", "--from", legacy_db.url)

    assert result.exit_code == 1
    assert "sessions:        2 imported" in result.stdout
    assert "not imported because of an error:\n  chat-2: " in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "agent-runtime: error: 1 item(s) could not be imported (listed above); "
        "run the command again to retry them"
    )
    assert "Traceback" not in result.output
