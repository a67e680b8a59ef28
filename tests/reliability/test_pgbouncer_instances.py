"""Two service instances behind one PgBouncer (transaction mode), the way a deployment
beyond one machine runs: separate uvicorn processes (2 workers each) configured with
`AGENT_RUNTIME__DB_POOLER=pgbouncer` and `AGENT_RUNTIME__DB_DIRECT_URL` (LISTEN goes
to PostgreSQL directly; everything else through the pooler).

- A write acknowledged by one instance reads back on the other, with the same
  version (ETag): sessions written on A and B alternately, each read on the other.
- A decision taken through one instance wakes the waits parked on the other, within
  about two seconds (LISTEN/NOTIFY across processes).
- Neither server logs a prepared-statement error, a traceback, or a failed
  LISTEN/NOTIFY self-test.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.backends import PGBOUNCER, POOLED_BACKENDS, Backend, Databases
from tests.fixtures.pgbouncer import prepared_statement_lines
from tests.reliability.hitl import (
    TimedWait,
    create_approvals,
    log_tracebacks,
    running_servers,
    timed_wait,
)

# PostgreSQL through PgBouncer: skipped (with the reason) without them, failed on CI.
pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]

WORKERS = 2  # per instance
CHAINS = 8  # concurrent clients, each writing its own sessions
SESSIONS_PER_CHAIN = 12  # CHAINS * this sessions, each written and read on both instances
WAITERS = 12
WAIT_SECONDS = 20.0
SETTLE_SECONDS = 1.5  # for the waits to reach B and read their (pending) approval
WAKE_BOUND = 2.0  # seconds from a decision's answer to its waiter's answer

# Lines that mean LISTEN is not working (the hub then falls back to polling).
LISTEN_PROBLEMS = ("self-test failed", "event notifications lost")


@pytest.fixture
def pooled(databases: Databases) -> Iterator[Backend]:
    """A new database, migrated directly, served through PgBouncer."""
    if PGBOUNCER not in POOLED_BACKENDS:
        pytest.skip("pgbouncer is not among AGENT_RUNTIME_TEST_BACKENDS")
    yield databases.fresh(PGBOUNCER)


def conversation(session_id: str, turns: int) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{session_id} turn {i} ✓"}
        for i in range(turns)
    ]


async def write_here_read_there(
    here: httpx.AsyncClient, there: httpx.AsyncClient, session_id: str
) -> list[str]:
    """Save on `here`, read on `there`; append on `there` (conditionally on the version
    read), read on `here`. What went wrong, if anything."""
    problems: list[str] = []
    first = conversation(session_id, 3)
    saved = await here.post(f"/sessions/{session_id}", json=first)
    if saved.status_code != 200:
        return [f"{session_id}: save -> {saved.status_code} {saved.text[:200]}"]
    loaded = await there.get(f"/sessions/{session_id}")
    if loaded.status_code != 200 or loaded.headers.get("etag") != saved.headers["etag"]:
        problems.append(
            f"{session_id}: saved as {saved.headers['etag']} on one instance, the other "
            f"answered {loaded.status_code} {loaded.headers.get('etag')}"
        )
    elif loaded.json()["messages"] != first:
        problems.append(f"{session_id}: the other instance read other messages")
    more = conversation(session_id, 5)[3:]
    appended = await there.post(
        f"/sessions/{session_id}/messages",
        json=more,
        headers={"If-Match": loaded.headers.get("etag", '"0"')},
    )
    if appended.status_code != 200:
        return [*problems, f"{session_id}: append -> {appended.status_code} {appended.text[:200]}"]
    back = await here.get(f"/sessions/{session_id}")
    if back.status_code != 200 or back.headers.get("etag") != appended.headers["etag"]:
        problems.append(
            f"{session_id}: appended as {appended.headers['etag']} on one instance, the "
            f"other answered {back.status_code} {back.headers.get('etag')}"
        )
    elif back.json()["messages"] != first + more:
        problems.append(f"{session_id}: the append did not read back on the other instance")
    return problems


@pytest.mark.timeout(180)
async def test_two_instances_on_one_pgbouncer_share_writes_and_wake_each_others_waits(
    pooled: Backend, tmp_path: Path
) -> None:
    tag = f"pgb-{uuid.uuid4().hex[:8]}"
    with running_servers(pooled, tmp_path, 2, workers=WORKERS) as (a, b):
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):
            # 1. Writes acknowledged by one instance, read on the other, alternately.
            async def chain(c: int) -> list[str]:
                problems: list[str] = []
                for i in range(SESSIONS_PER_CHAIN):
                    here, there = (on_a, on_b) if (c + i) % 2 == 0 else (on_b, on_a)
                    problems += await write_here_read_there(here, there, f"{tag}-{c}-{i}")
                return problems

            chains = await asyncio.gather(*(chain(c) for c in range(CHAINS)))
            wrong = [p for problems in chains for p in problems]
            assert wrong == [], "\n".join(wrong[:20])

            # 2. Waits parked on B, decisions taken through A.
            session_id = f"{tag}-hitl"
            call_ids = [f"{session_id}-{i}" for i in range(WAITERS)]
            await create_approvals(on_a, session_id, call_ids)
            waits = [
                asyncio.create_task(timed_wait(on_b, call_id, WAIT_SECONDS)) for call_id in call_ids
            ]
            await asyncio.sleep(SETTLE_SECONDS)
            early = [t.result() for t in waits if t.done()]
            assert early == [], "waits answered before any decision:\n" + "\n".join(map(str, early))
            decided_at: dict[str, float] = {}
            for call_id in call_ids:
                decided = await on_a.post(
                    f"/approvals/{call_id}/decision",
                    json={"status": "approved", "decided_by": "reviewer-on-a"},
                )
                assert decided.status_code == 200, decided.text
                decided_at[call_id] = time.monotonic()
            answered: list[TimedWait] = await asyncio.wait_for(
                asyncio.gather(*waits), WAIT_SECONDS + 10
            )

    late = [
        f"{w} ({w.ended - decided_at[w.call_id]:.2f} s after its decision)"
        for w in answered
        if w.status != 200
        or w.approval_status != "approved"
        or w.body.get("decided_by") != "reviewer-on-a"
        or w.ended - decided_at[w.call_id] > WAKE_BOUND
    ]
    assert late == [], "\n".join(late)
    wake = sorted(w.ended - decided_at[w.call_id] for w in answered)
    print(
        f"\n{CHAINS * SESSIONS_PER_CHAIN} sessions written and read back across two instances "
        f"on one PgBouncer; {WAITERS} waits on B woken by decisions on A: after the "
        f"decision's 200, median {statistics.median(wake):.3f} s, max {wake[-1]:.3f} s"
    )
    for server in (a, b):
        log = server.output()
        assert prepared_statement_lines(log) == [], "\n".join(prepared_statement_lines(log)[:20])
        assert log_tracebacks(server) == [], server.errors()[-5000:]
        listen = [line for line in log.splitlines() if any(p in line for p in LISTEN_PROBLEMS)]
        assert listen == [], "\n".join(listen)
