"""Concurrent writers: 64 clients against a multi-worker uvicorn on one database.

SQLite: 2 worker processes writing one file; PostgreSQL: 4 workers, directly and
through PgBouncer in transaction mode (where no log line may mention a prepared
statement: asyncpg must keep none across transactions). For
`AGENT_RUNTIME_SOAK_SECONDS` the clients mix whole-list saves, appends, loads,
approval records and decisions. Nothing may fail: no 5xx (so no "database is
locked"), no request without an answer, no answer that contradicts an earlier
acknowledged write (whichever worker serves it). Afterwards the database holds
every acknowledged write exactly as sent.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.fixtures.backends import (
    POOLED_BACKENDS,
    Backend,
    Databases,
    no_prepared_statement_errors,
)
from tests.fixtures.pgbouncer import prepared_statement_lines
from tests.reliability.connections import spread_connections
from tests.reliability.deployment import WORKERS, fresh_backend, log_problems, uvicorn_group
from tests.reliability.load import CLIENTS, SOAK_SECONDS, TEST_TIMEOUT, publish, run_load
from tests.reliability.verify import verify_clients
from tests.reliability.workload import make_clients


@pytest.fixture(params=POOLED_BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Backend]:
    with no_prepared_statement_errors(fresh_backend(databases, request.param)) as backend:
        yield backend


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_concurrent_writers_get_no_error_and_lose_no_acknowledged_write(
    backend: Backend, tmp_path, request
):
    workers = WORKERS[backend.name]
    clients = make_clients(CLIENTS, prefix=f"cw-{uuid.uuid4().hex[:8]}", seed=1)

    with uvicorn_group(backend, tmp_path, workers) as server:
        connections = await spread_connections(server.url, server.process.pid, CLIENTS, workers)
        result = await run_load(clients, connections, SOAK_SECONDS)
        stopped = server.stop()
        problems_logged = log_problems(server)
        prepared = prepared_statement_lines(server.output())
    publish(request, f"{backend.name}, {workers} workers, {CLIENTS} clients", result.summary())

    assert problems_logged == [], "\n".join(problems_logged[:20])
    assert prepared == [], "\n".join(prepared[:20])
    assert result.server_errors == [], "\n".join(result.server_errors[:20])
    assert result.unanswered == [], "\n".join(result.unanswered[:20])
    assert result.wrong_answers == [], "\n".join(result.wrong_answers[:20])
    assert stopped, f"no clean shutdown after the load\n{server.errors()[-5000:]}"
    # The load did what it is for: every kind of request, from every client.
    assert set(Counter(s.op for s in result.samples)) >= {
        "save",
        "append",
        "load",
        "create_approval",
        "decide",
    }
    assert {s.client for s in result.samples if s.status == 200} == set(range(CLIENTS))
    assert len({s.worker for s in result.samples if s.status == 200}) == workers

    # What the database holds, read directly (not through the pooler).
    checked = await verify_clients(backend.direct, clients)
    publish(request, "database", checked.summary())
    assert checked.problems == [], checked.report()
