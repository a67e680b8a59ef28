"""README "Use from another process": its example runs against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.fixtures.backends import ROOT

HEADING = "## Use from another process"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section has one python example"
    return blocks[0]


def test_the_readme_example_runs_against_a_live_server(server, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}

    done = subprocess.run(
        [sys.executable, str(script)],
        env={**env, "AGENT_RUNTIME_URL": server.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "claimed again: executed {'paid': 100}"
    assert [line.split()[1] for line in lines[1:7]] == [
        "session.saved",
        "session.saved",
        "approval.created",
        "approval.decided",
        "approval.claimed",
        "approval.executed",
    ]
    assert lines[7] == "['Pay 120', 'Asking first.']"
    assert lines[8] == "[{'role': 'user', 'content': 'hi'}] UTC"
