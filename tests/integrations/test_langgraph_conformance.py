"""`AgentRuntimeSaver` against LangGraph's checkpointer conformance suite.

The suite is a test dependency (`langgraph-checkpoint-conformance`), run as it is,
not copied: every capability, base and extended (put, put_writes, get_tuple, list,
delete_thread, delete_for_runs, copy_thread, prune), on SQLite and PostgreSQL,
in-process (`init_database`), one test per capability and backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    ALL_CAPABILITIES,
    Capability,
    DetectedCapabilities,
)
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from agent_runtime.integrations.langgraph import AgentRuntimeSaver
from tests.fixtures.backends import Backend


@checkpointer_test(name="AgentRuntimeSaver")
async def agent_runtime_saver() -> AsyncIterator[AgentRuntimeSaver]:
    yield AgentRuntimeSaver()


def test_every_capability_is_detected():
    detected = DetectedCapabilities.from_instance(AgentRuntimeSaver())
    assert detected.detected == ALL_CAPABILITIES


@pytest.mark.parametrize("capability", [c.value for c in Capability])
async def test_conformance(store: Backend, capability: str):
    failures: list[str] = []

    def on_result(cap: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{test}:\n{error}")

    report = await validate(
        agent_runtime_saver,
        capabilities={capability},
        progress=ProgressCallbacks(on_test_result=on_result),
    )
    result = report.results[capability]
    assert result.detected, f"{capability} not detected"
    assert result.passed, "\n".join(failures)
    assert result.tests_failed == 0
    assert result.tests_passed > 0
