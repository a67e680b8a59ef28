"""The `agent-runtime` command: serve, migrate, cleanup, check, on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tortoise import Tortoise

from agent_runtime.cli.check import pooler_report
from agent_runtime.config import Settings
from agent_runtime.db.config import database_url, tortoise_config
from agent_runtime.db.migrations import migration_files
from agent_runtime.services import database as svc
from harness.ports import free_port
from models import PendingApproval, Session
from tests.cli.helpers import agent_runtime
from tests.fixtures.backends import BACKENDS, ROOT

COMMANDS = [
    "serve",
    "migrate",
    "makemigrations",
    "showmigrations",
    "shell",
    "cleanup",
    "reviewer",
    "check",
    "import-legacy",
]


@pytest.fixture(params=BACKENDS)
def empty_url(request, databases):
    if request.param == "postgres":
        request.applymarker("postgres")
    return databases.empty(request.param)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = agent_runtime(*([command] if command else []), "--help", url="sqlite://")

    assert result.returncode == 0, result.stderr
    assert "Usage: agent-runtime" in result.stdout


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "agent-runtime"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)

    assert result.returncode == 0
    assert "agent-runtime" in result.stdout


def test_migrate_check_then_migrate_then_check(empty_url):
    pending = agent_runtime("migrate", "--check", url=empty_url)
    applied = agent_runtime("migrate", url=empty_url)
    again = agent_runtime("migrate", url=empty_url)
    current = agent_runtime("migrate", "--check", url=empty_url)

    assert pending.returncode == 1
    assert f"{len(migration_files())} migration(s) pending" in pending.stdout
    assert applied.returncode == 0
    assert applied.stdout.count("applied ") == len(migration_files())
    assert "nothing to apply" in again.stdout
    assert current.returncode == 0
    assert "up to date" in current.stdout


async def test_concurrent_migrators_apply_each_migration_once(empty_url):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    environment["AGENT_RUNTIME__DB_URL"] = empty_url
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", "migrate"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    applied = sum(out.count("applied ") for out, _ in outputs)
    assert applied == len(migration_files())
    from tests.fixtures.backends import aerich_ok

    assert "No available heads" in aerich_ok(empty_url, "heads")


def test_check_reports_pending_schema_then_a_healthy_database(empty_url):
    before = agent_runtime("check", url=empty_url)
    agent_runtime("migrate", url=empty_url)
    after = agent_runtime("check", url=empty_url)

    assert before.returncode == 1
    assert "run `agent-runtime migrate`" in before.stdout
    assert after.returncode == 0, after.stdout + after.stderr
    assert "schema: up to date" in after.stdout
    if empty_url.startswith("sqlite"):
        assert "journal_mode=wal synchronous=1 cache_size=-64000 temp_store=2" in after.stdout
        assert "busy_timeout=30000" in after.stdout
    else:
        assert "database: PostgreSQL 15" in after.stdout


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:9/nowhere", "cannot reach the database"),
        ("mysql://root@localhost/agents", "unsupported database URL scheme 'mysql'"),
    ],
)
@pytest.mark.parametrize("command", ["check", "migrate", "cleanup"])
def test_expected_failures_are_one_line_without_traceback(command, url, message):
    result = agent_runtime(command, url=url, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def _aged_data(url: str) -> None:
    from agent_runtime.db.urls import parse_db_url

    database = parse_db_url(url)
    await Tortoise.init(config=tortoise_config(database))
    try:
        db = Tortoise.get_connection(database.dialect)
        now = datetime.now(UTC)
        await svc.save_session(
            db, "idle", [{"role": "user", "content": "x"}], now - timedelta(hours=30)
        )
        await svc.save_session(db, "active", [], now)
        await svc.save_session(db, "gone", [], now)
        await svc.delete_session(db, "gone")
        await Session.filter(id="gone").using_db(db).update(deleted_at=now - timedelta(days=40))
        await svc.save_pending_approval(db, "active", "stale", "tool", {})
        await (
            PendingApproval.filter(call_id="stale")
            .using_db(db)
            .update(created_at=now - timedelta(hours=100))
        )
    finally:
        await Tortoise.close_connections()


async def _state(url: str) -> tuple[list[str], list[str], str]:
    from agent_runtime.db.urls import parse_db_url

    database = parse_db_url(url)
    await Tortoise.init(config=tortoise_config(database))
    try:
        db = Tortoise.get_connection(database.dialect)
        approval = await svc.get_approval(db, "stale")
        return (
            await svc.list_all_sessions(db),
            await svc.list_all_sessions(db, True),
            approval["status"],
        )
    finally:
        await Tortoise.close_connections()


async def test_cleanup_dry_run_then_for_real(empty_url):
    agent_runtime("migrate", url=empty_url)
    await _aged_data(empty_url)

    dry = agent_runtime("cleanup", "--dry-run", "--expire-approvals-hours", "72", url=empty_url)
    after_dry = await _state(empty_url)
    real = agent_runtime("cleanup", "--expire-approvals-hours", "72", url=empty_url)
    after = await _state(empty_url)

    assert dry.returncode == 0 and real.returncode == 0, dry.stderr + real.stderr
    expected = (
        "1 idle session(s) {}soft-deleted, 1 session(s) {}hard-deleted, 1 approval(s) {}expired"
    )
    assert expected.format(*["would be "] * 3) in dry.stdout
    assert after_dry[0] == ["active", "idle"]
    assert after_dry[2] == "pending"
    assert sorted(after_dry[1]) == ["active", "gone", "idle"]
    assert expected.format("", "", "") in real.stdout
    assert after[0] == ["active"]
    assert sorted(after[1]) == ["active", "idle"]
    assert after[2] == "expired"


def test_serve_runs_uvicorn_with_flags_and_stops_on_sigterm(empty_url, tmp_path):
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    environment["AGENT_RUNTIME__DB_URL"] = empty_url
    subprocess.run(
        [sys.executable, "-m", "agent_runtime", "migrate"],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_runtime",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and ready is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        saved = httpx.post(
            f"http://127.0.0.1:{port}/sessions/s1", json=[{"role": "user", "content": "hi"}]
        )
        assert saved.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    assert process.returncode in (0, -signal.SIGTERM)


def test_serve_refuses_a_public_address_without_an_api_key(empty_url):
    result = agent_runtime("serve", "--host", "0.0.0.0", url=empty_url, timeout=60)

    assert result.returncode == 1
    assert "without AGENT_RUNTIME__API_KEY" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_check_reports_the_pooler_mode_and_warns_without_a_direct_url():
    settings = Settings(db_url="postgresql://u@bouncer:6432/db", db_pooler="pgbouncer")
    alone = pooler_report(database_url(settings))
    direct = pooler_report(
        database_url(settings.model_copy(update={"db_direct_url": "postgresql://u@pg:5432/db"}))
    )

    assert alone[0].startswith("pooler: pgbouncer (transaction pooling")
    assert any(
        line.startswith("warning:") and "AGENT_RUNTIME__DB_DIRECT_URL" in line for line in alone
    )
    assert direct == [
        "pooler: pgbouncer (transaction pooling: no named prepared statements; "
        "LISTEN and the migration lock on postgresql://u@pg:5432/db)"
    ]
    assert pooler_report(database_url(Settings(db_url="postgresql://u@pg/db"))) == [
        "pooler: none (direct PostgreSQL connections)"
    ]
