"""`agent-runtime migrate --to VERSION|zero`: forward and backward, on both backends."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from agent_runtime.db.migration_lock import migration_lock
from agent_runtime.db.urls import parse_db_url
from tests.cli.helpers import FILES, agent_runtime, columns, ok, one_line_error, schema
from tests.fixtures.backends import ROOT

MODEL_TABLES = {"sessions", "messages", "agent_contexts", "agent_switches", "pending_approvals"}


def applied_lines(stdout: str, word: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith(f"{word} ")]


async def test_forward_then_back_then_zero_then_all(empty_url):
    # Any spelling of VERSION: the leading number, the name without .py, the file name.
    to_1 = ok(agent_runtime("migrate", "--to", "1", url=empty_url))
    after_1 = await schema(empty_url)
    to_last = ok(agent_runtime("migrate", "--to", FILES[-1].removesuffix(".py"), url=empty_url))
    back_to_1 = ok(agent_runtime("migrate", "--to", FILES[1], url=empty_url))
    back_schema = await schema(empty_url)
    again = ok(agent_runtime("migrate", "--to", "1", url=empty_url))
    zero = ok(agent_runtime("migrate", "--to", "zero", url=empty_url))
    zero_schema = await schema(empty_url)
    pending = agent_runtime("migrate", "--check", url=empty_url)

    assert applied_lines(to_1, "applied") == FILES[:2]
    assert "messages_token" not in columns(after_1, "sessions")
    assert applied_lines(to_last, "applied") == FILES[2:]
    # Backward: the later ones, newest first, and only those.
    assert applied_lines(back_to_1, "unapplied") == FILES[:1:-1]
    assert applied_lines(back_to_1, "applied") == []
    assert back_schema == after_1
    assert "nothing to do" in again
    assert applied_lines(zero, "unapplied") == FILES[1::-1]
    assert set(zero_schema) == {"aerich"}
    assert pending.returncode == 1
    assert f"{len(FILES)} migration(s) pending" in pending.stdout
    assert applied_lines(ok(agent_runtime("migrate", url=empty_url)), "applied") == FILES


@pytest.mark.parametrize("version", ["99", "nope", "1_nope.py"])
def test_an_unknown_version_is_a_one_line_error(version):
    result = agent_runtime("migrate", "--to", version, url="sqlite://")

    assert f"no migration {version!r}" in one_line_error(result)
    assert "agent-runtime showmigrations" in result.stderr


def test_to_and_check_do_not_go_together():
    result = agent_runtime("migrate", "--to", "1", "--check", url="sqlite://")

    assert "--check and --to" in one_line_error(result)


async def test_a_downgrade_waits_for_the_migration_lock(empty_url):
    ok(agent_runtime("migrate", url=empty_url))
    env = {"AGENT_RUNTIME__DB_URL": empty_url, "PATH": ""}
    async with migration_lock(parse_db_url(empty_url)):
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", "migrate", "--to", "zero"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(4)  # long enough to start, connect and reach the lock
        still_waiting = process.poll() is None
        tables_while_locked = set(await schema(empty_url))
    out, err = process.communicate(timeout=120)

    assert still_waiting, out + err
    assert tables_while_locked >= MODEL_TABLES
    assert process.returncode == 0, err
    assert applied_lines(out, "unapplied") == FILES[::-1]
    assert set(await schema(empty_url)) == {"aerich"}
