"""`agent-runtime showmigrations`: each migration file, applied [X] or pending [ ]."""

from __future__ import annotations

from tests.cli.helpers import FILES, agent_runtime, ok


def marks(stdout: str) -> dict[str, str]:
    return {
        line[5:]: line[1:4] for line in stdout.splitlines() if line.startswith((" [X] ", " [ ] "))
    }


def test_empty_then_partly_then_fully_migrated(empty_url):
    empty = ok(agent_runtime("showmigrations", url=empty_url))
    ok(agent_runtime("migrate", "--to", "1", url=empty_url))
    partly = ok(agent_runtime("showmigrations", url=empty_url))
    ok(agent_runtime("migrate", url=empty_url))
    fully = ok(agent_runtime("showmigrations", url=empty_url))

    assert list(marks(empty)) == FILES  # every file, oldest first
    assert set(marks(empty).values()) == {"[ ]"}
    assert f"0 applied, {len(FILES)} pending" in empty
    assert marks(partly) == {name: "[X]" if i < 2 else "[ ]" for i, name in enumerate(FILES)}
    assert f"2 applied, {len(FILES) - 2} pending" in partly
    assert set(marks(fully).values()) == {"[X]"}
    assert f"{len(FILES)} applied, 0 pending" in fully


def test_an_unreachable_database_is_a_one_line_error():
    result = agent_runtime("showmigrations", url="postgresql://postgres@127.0.0.1:9/nowhere")

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot reach the database" in result.stderr
