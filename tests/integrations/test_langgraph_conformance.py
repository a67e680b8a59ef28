"""`AgentRuntimeSaver` against LangGraph's checkpointer conformance suite.

The suite is a test dependency (`langgraph-checkpoint-conformance`), run as it is,
not copied: every capability, base and extended (put, put_writes, get_tuple, list,
delete_thread, delete_for_runs, copy_thread, prune), one test per capability, mode
and backend. Modes: in-process (`init_database`), and over REST
(`AgentRuntimeSaver(client=...)` with an agent's key, to the app over
`httpx.ASGITransport`). Backends: SQLite, PostgreSQL, and PostgreSQL through
PgBouncer in transaction mode (configured as a deployment behind it is: in-process
too), where nothing may log a prepared-statement error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    ALL_CAPABILITIES,
    Capability,
    DetectedCapabilities,
)
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.config import get_settings
from agent_runtime.integrations.langgraph import AgentRuntimeSaver
from agent_runtime.services import api_keys as api_key_service
from agent_runtime.services import database
from tests.fixtures.backends import (
    POOLED_BACKENDS,
    Backend,
    Databases,
    no_prepared_statement_errors,
    truncate,
)
from tests.fixtures.remote import app_client

ADMIN_KEY = "conformance-admin-key"


@pytest.fixture(params=POOLED_BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Backend]:
    """SQLite, PostgreSQL and, as for the API tests, PostgreSQL through PgBouncer;
    through PgBouncer, nothing in this process may log a prepared-statement error."""
    with no_prepared_statement_errors(databases.backend(request.param)) as backend:
        yield backend


@asynccontextmanager
async def in_process(backend: Backend) -> AsyncIterator[AgentRuntimeSaver]:
    """`init_database` configured as the deployment's environment would be (through
    PgBouncer: `AGENT_RUNTIME__DB_POOLER` and `AGENT_RUNTIME__DB_DIRECT_URL`)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in backend.env.items():
            env.setenv(name, value)
        get_settings.cache_clear()
        await database.init_database()
        try:
            await truncate(database.get_connection())
            yield AgentRuntimeSaver()
        finally:
            await database.close_db()
    get_settings.cache_clear()


@asynccontextmanager
async def over_rest(backend: Backend) -> AsyncIterator[AgentRuntimeSaver]:
    """The app (authentication on) and a saver over REST with an agent's key."""
    async with app_client(backend, api_key=ADMIN_KEY) as (_, connection, app):
        token, _ = await api_key_service.add_api_key(connection, "langgraph", "agent")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with AsyncAgentRuntimeClient(
                "http://test", api_key=token, transport=transport
            ) as client:
                yield AgentRuntimeSaver(client=client)
        finally:  # a key left in the run's database would turn authentication on
            await truncate(connection)


MODES = {"in-process": in_process, "rest": over_rest}


def test_every_capability_is_detected():
    for saver in (AgentRuntimeSaver(), AgentRuntimeSaver(client=AsyncAgentRuntimeClient())):
        assert DetectedCapabilities.from_instance(saver).detected == ALL_CAPABILITIES


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("capability", [c.value for c in Capability])
async def test_conformance(backend: Backend, mode: str, capability: str):
    failures: list[str] = []

    def on_result(cap: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{test}:\n{error}")

    async with MODES[mode](backend) as saver:

        @checkpointer_test(name=f"AgentRuntimeSaver ({mode})")
        async def agent_runtime_saver() -> AsyncIterator[AgentRuntimeSaver]:
            yield saver

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


@pytest.mark.parametrize("mode", list(MODES))
async def test_the_sync_methods_run_on_the_savers_loop_from_another_thread(
    backend: Backend, mode: str
):
    from langgraph.checkpoint.base import empty_checkpoint

    async with MODES[mode](backend) as saver:
        config = {"configurable": {"thread_id": "sync-1", "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()

        def use() -> tuple[Any, list[Any]]:
            stored = saver.put(config, checkpoint, {"source": "input", "step": -1}, {})
            saver.put_writes(stored, [("ch", "value")], "task-1")
            return saver.get_tuple(config), list(saver.list(None, filter={"step": -1}))

        latest, listed = await asyncio.to_thread(use)

    assert latest is not None and latest.checkpoint["id"] == checkpoint["id"]
    assert latest.pending_writes == [("task-1", "ch", "value")]
    assert [t.config["configurable"]["thread_id"] for t in listed] == ["sync-1"]
