"""Crash: `kill -9` of the whole service (uvicorn's master and every worker) under
write load, then a restart on the same database.

Every write acknowledged before the kill must be stored exactly as sent; a write
whose answer the kill swallowed may be there or not, but whole. The SQLite file
passes `PRAGMA integrity_check`, the migration state is intact (`aerich heads`:
nothing pending; the restarted service starts, which checks it too), and the
restarted service serves reads and writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fixtures.backends import BACKENDS, Backend, Databases, aerich_ok
from tests.reliability.connections import spread_connections
from tests.reliability.deployment import WORKERS, fresh_backend, log_problems, uvicorn_group
from tests.reliability.load import (
    CLIENTS,
    REQUEST_TIMEOUT,
    SOAK_SECONDS,
    TEST_TIMEOUT,
    publish,
    run_load,
)
from tests.reliability.verify import verify_clients
from tests.reliability.workload import make_clients


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    return fresh_backend(databases, request.param)


def sqlite_checks(path: Path) -> list[tuple[str, ...]]:
    """`PRAGMA integrity_check` and `PRAGMA foreign_key_check` of a SQLite file, on a
    read-only connection: it does not checkpoint the WAL a crash left behind, so the
    restarted service still finds the file as the crash left it."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
        rows += connection.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        connection.close()
    return [tuple(str(v) for v in row) for row in rows]


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_kill_9_under_write_load_loses_no_acknowledged_write(
    backend: Backend, tmp_path, request
):
    workers = WORKERS[backend.name]
    clients = make_clients(CLIENTS, prefix=f"crash-{uuid.uuid4().hex[:8]}", seed=2)

    with uvicorn_group(backend.url, tmp_path, workers) as server:
        connections = await spread_connections(server.url, server.process.pid, CLIENTS, workers)
        # The clients run until the kill stops each of them (the bound is a safety net).
        load = asyncio.create_task(
            run_load(clients, connections, SOAK_SECONDS + 2 * REQUEST_TIMEOUT)
        )
        await asyncio.sleep(SOAK_SECONDS)
        assert not load.done(), "the load ended before the kill"
        killed_at = time.monotonic()
        server.kill()  # SIGKILL to the process group: master and workers at once
        result = await load
        log_before_kill = log_problems(server)
    publish(request, f"{backend.name}, {workers} workers, kill -9", result.summary())

    assert log_before_kill == [], "\n".join(log_before_kill[:20])
    assert result.server_errors == [], "\n".join(result.server_errors[:20])
    assert result.wrong_answers == [], "\n".join(result.wrong_answers[:20])
    unanswered_before_kill = [s for s in result.samples if s.status is None and s.ended < killed_at]
    assert unanswered_before_kill == []
    # Every client was cut off by the kill, mid-conversation.
    assert len(result.unanswered) == CLIENTS, "\n".join(result.unanswered[:20])
    acked_before_kill = [s for s in result.samples if s.status == 200 and s.ended < killed_at]
    assert acked_before_kill, "nothing was acknowledged before the kill"

    sqlite_path = backend.database.sqlite_path
    if sqlite_path is not None:
        assert sqlite_checks(sqlite_path) == [("ok",)]

    # Restart on the same database: start-up checks the schema against the migrations.
    with uvicorn_group(backend.url, tmp_path, workers) as restarted:
        checked = await verify_clients(backend.url, clients)
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as http:
            session_id = f"after-crash-{uuid.uuid4().hex[:8]}"
            messages = [{"role": "user", "content": "still there?"}]
            saved = await http.post(f"/sessions/{session_id}", json=messages)
            assert saved.status_code == 200, saved.text
            loaded = await http.get(f"/sessions/{session_id}")
            assert loaded.status_code == 200 and loaded.json()["messages"] == messages
        assert restarted.stop(), restarted.errors()[-5000:]
        assert log_problems(restarted) == []
    publish(request, "database", checked.summary())
    assert checked.problems == [], checked.report()

    assert "No available heads" in aerich_ok(backend.url, "heads")
    if sqlite_path is not None:
        assert sqlite_checks(sqlite_path) == [("ok",)]
