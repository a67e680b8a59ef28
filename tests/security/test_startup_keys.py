"""An empty or blank key never turns authentication off: start-up refuses it in one
line naming the variable, however the server is started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from agent_runtime.config import Settings
from tests.fixtures.backends import ROOT

STARTS = {
    "agent-runtime serve": [sys.executable, "-m", "agent_runtime", "serve", "--port", "1"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "agent_runtime.main:app", "--port", "1"],
}


@pytest.mark.parametrize("start", sorted(STARTS))
@pytest.mark.parametrize("variable", ["AGENT_RUNTIME__API_KEY", "AGENT_RUNTIME__METRICS_KEY"])
@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_an_empty_or_blank_key_stops_start_up_in_one_line(tmp_path, start, variable, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME")}
    env.update({"AGENT_RUNTIME__DB_URL": f"sqlite:///{tmp_path}/a.db", variable: value})

    result = subprocess.run(
        STARTS[start], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and "empty" in lines[0]


@pytest.mark.parametrize("field", ["api_key", "metrics_key"])
def test_settings_refuse_a_blank_key_in_process(field):
    with pytest.raises(ValidationError, match="empty or blank"):
        Settings(**{field: " "})

    assert getattr(Settings(**{field: "k"}), field).get_secret_value() == "k"
    assert getattr(Settings(**{field: None}), field) is None  # unset: no key
