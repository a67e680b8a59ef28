"""The checks of this folder are not vacuous: `verify_clients` finds every kind of
lost, altered or invented write, and accepts a write left in doubt either way.

A few clients of `workload` run against the app in process; then the database is
tampered with, one change at a time, each of which must be reported.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise.expressions import F

from agent_runtime.config import Settings
from agent_runtime.main import create_app
from agent_runtime.services.database import (
    close_db,
    get_connection,
    init_database,
    save_session,
)
from models import ApprovalStatus, Message, PendingApproval, Session
from tests.fixtures.backends import BACKENDS, Backend, Databases
from tests.reliability.deployment import fresh_backend
from tests.reliability.verify import verify_clients
from tests.reliability.workload import Client, make_clients


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    return fresh_backend(databases, request.param)


async def run_in_process(backend: Backend, clients: list[Client], steps: int) -> None:
    app = create_app(Settings(db_url=backend.url))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for _ in range(steps):
                for client in clients:
                    request = client.next_request()
                    response = await http.request(request.method, request.path, json=request.body)
                    assert request.answered(response.status_code, response.json()) is None


async def tamper(backend: Backend, change) -> None:
    await init_database(backend.url)
    try:
        await change(get_connection())
    finally:
        await close_db()


async def test_verification_reports_each_lost_altered_or_invented_write(backend):
    clients = make_clients(3, prefix="verify", seed=7)
    await run_in_process(backend, clients, steps=60)
    sessions = [s for c in clients for s in c.sessions if s.acked]
    approvals = [a for c in clients for a in c.approvals if a.created == "acked"]
    decided = [a for a in approvals if a.decided == "acked"]
    timed_session, timed_index = next(
        (s, i) for s in sessions for i, m in enumerate(s.acked or []) if "timestamp" in m
    )
    others = [s for s in sessions if s is not timed_session]
    assert len(others) >= 4 and decided and len(approvals) > len(decided)

    clean = await verify_clients(backend.url, clients)
    assert clean.problems == [], clean.report()
    assert clean.sessions == len(sessions) and clean.approvals == len(approvals)

    altered, shortened, bumped, doubtful = others[:4]
    lost_approval = next(a for a in approvals if a not in decided)
    flipped = decided[0]
    flipped_to = "rejected" if flipped.expected_status() != "rejected" else "approved"
    changes = [
        (
            altered.session_id,
            lambda db: (
                Message.filter(session_id=altered.session_id, position=0)
                .using_db(db)
                .update(content="tampered")
            ),
        ),
        (
            shortened.session_id,
            lambda db: (
                Message.filter(
                    session_id=shortened.session_id, position=len(shortened.acked or []) - 1
                )
                .using_db(db)
                .delete()
            ),
        ),
        (
            bumped.session_id,
            lambda db: (
                Session.filter(id=bumped.session_id).using_db(db).update(version=F("version") + 1)
            ),
        ),
        (
            timed_session.session_id,
            lambda db: (
                Message.filter(session_id=timed_session.session_id, position=timed_index)
                .using_db(db)
                .update(timestamp=datetime(2001, 1, 1, tzinfo=UTC))
            ),
        ),
        (
            lost_approval.call_id,
            lambda db: PendingApproval.filter(call_id=lost_approval.call_id).using_db(db).delete(),
        ),
        (
            flipped.call_id,
            lambda db: (
                PendingApproval.filter(call_id=flipped.call_id)
                .using_db(db)
                .update(status=ApprovalStatus(flipped_to))
            ),
        ),
        (
            "invented",
            lambda db: save_session(
                db, "invented", [{"role": "user", "content": "x"}], datetime.now(UTC)
            ),
        ),
    ]
    reported: set[str] = set()
    for target, change in changes:
        await tamper(backend, change)
        problems = set((await verify_clients(backend.url, clients)).problems)
        new = problems - reported
        assert len(new) == 1 and target in new.pop(), (target, problems - reported)
        reported = problems

    # A write left in doubt may have happened, or not; anything else is reported.
    assert doubtful.acked is not None
    doubtful.in_doubt = [*doubtful.acked, {"role": "user", "content": "in doubt"}]
    result = await verify_clients(backend.url, clients)
    assert (set(result.problems), result.in_doubt, result.in_doubt_applied) == (reported, 1, 0)

    async def apply_in_doubt(db) -> None:
        await save_session(db, doubtful.session_id, doubtful.in_doubt, datetime.now(UTC))

    await tamper(backend, apply_in_doubt)
    result = await verify_clients(backend.url, clients)
    assert (set(result.problems), result.in_doubt, result.in_doubt_applied) == (reported, 1, 1)

    await tamper(
        backend,
        lambda db: save_session(
            db, doubtful.session_id, [{"role": "user", "content": "neither"}], datetime.now(UTC)
        ),
    )
    new = set((await verify_clients(backend.url, clients)).problems) - reported
    assert len(new) == 1 and doubtful.session_id in new.pop()
