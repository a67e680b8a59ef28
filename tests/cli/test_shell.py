"""`agent-runtime shell`: piped scripts, -c, and the interactive console on a TTY."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests.cli.helpers import agent_runtime, ok
from tests.fixtures.backends import ROOT

SEED = """
from datetime import UTC, datetime
await services.save_session(db, "s1", [{"role": "user", "content": "hi"}], datetime.now(UTC))
await services.save_session(db, "s2", [], datetime.now(UTC))
print("seeded", await Session.all().count())
"""


def test_a_piped_script_sees_models_services_and_db(empty_url):
    ok(agent_runtime("migrate", url=empty_url))

    seeded = agent_runtime("shell", url=empty_url, input=SEED)
    counted = agent_runtime("shell", url=empty_url, input="print(await Session.all().count())\n")
    listed = agent_runtime(
        "shell",
        "-c",
        "print(await Message.filter(session_id='s1').count(), MessageRole.USER.value,"
        " ApprovalStatus.PENDING.value, db.capabilities.dialect)",
        url=empty_url,
    )

    assert ok(seeded).strip() == "seeded 2"
    assert ok(counted).strip() == "2"
    dialect = "sqlite" if empty_url.startswith("sqlite") else "postgres"
    assert ok(listed).split() == ["1", "user", "pending", dialect]


def test_every_model_tortoise_registered_is_in_the_namespace(empty_url):
    """Not only the names `models.__all__` lists: Aerich's model is registered for the
    app but exported by no module of ours, as a model a developer just added would be."""
    ok(agent_runtime("migrate", url=empty_url))
    code = (
        "from tortoise import Tortoise\n"
        "registered = dict(Tortoise.apps.items())['models']\n"
        "assert 'Aerich' not in __import__('models').__all__\n"
        "print(all(globals()[name] is model for name, model in registered.items()),"
        " await Aerich.all().count() > 0)\n"
    )

    result = agent_runtime("shell", url=empty_url, input=code)

    assert ok(result).split() == ["True", "True"]


def test_an_exception_prints_the_user_traceback_and_exits_1(empty_url):
    ok(agent_runtime("migrate", url=empty_url))

    result = agent_runtime(
        "shell", url=empty_url, input="print('before')\nawait Session.get(id='missing')\n"
    )

    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert 'File "<stdin>", line 2' in result.stderr
    assert "DoesNotExist" in result.stderr
    assert "agent_runtime/cli" not in result.stderr  # the user's frames, not ours


def test_syntax_errors_and_sys_exit():
    bad = agent_runtime("shell", "-c", "def (", url="sqlite://")
    exits = agent_runtime("shell", "-c", "import sys; sys.exit(3)", url="sqlite://")

    assert bad.returncode == 1
    assert "SyntaxError" in bad.stderr and "Traceback" not in bad.stderr
    assert exits.returncode == 3


def test_an_unreachable_database_is_a_one_line_error():
    result = agent_runtime(
        "shell", url="postgresql://postgres@127.0.0.1:9/nowhere", input="print(1)\n"
    )

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot reach the database" in result.stderr


def _interact(url: str, lines: list[str]) -> tuple[int, str]:
    """Type `lines` into `agent-runtime shell` on a pseudo-terminal, each after a prompt."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime", "shell"],
        cwd=ROOT,
        env={**env, "AGENT_RUNTIME__DB_URL": url},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        start, deadline = len(output), time.monotonic() + 60
        while time.monotonic() < deadline and not output[start:].endswith(marker):
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    output += os.read(leader, 4096)
                except OSError:  # the shell exited
                    return

    try:
        for line in lines:
            read_until(b">>> ")  # type ahead would be flushed when readline starts
            os.write(leader, line.encode() + b"\n")
        read_until(b"\0")  # until the shell exits
        return process.wait(timeout=60), output.decode()
    finally:
        os.close(leader)


def test_on_a_terminal_it_is_an_interactive_console(empty_url):
    ok(agent_runtime("migrate", url=empty_url))

    code, output = _interact(
        empty_url,
        [
            "from datetime import UTC, datetime",
            "await services.save_session(db, 'tty', [], datetime.now(UTC))",
            "n = await Session.all().count()",
            "n + 41",
            "await Session.get(id='missing')",
            "[s.id for s in await Session.all()]",
            "exit()",
        ],
    )

    assert code == 0, output
    assert "top-level `await` works" in output
    for name in ("AgentContext", "Session", "PendingApproval", "MessageRole", "db", "services"):
        assert name in output.splitlines()[1]
    assert "\n42\r\n" in output  # the expression's value, echoed like Python's REPL
    assert "DoesNotExist" in output  # an error is shown, and the console goes on
    assert "['tty']" in output
