"""Same-session races on a multi-worker uvicorn: many clients writing one session,
or one approval, at the same instant.

Every request must get a clean answer (success, 409 or 412; never a 5xx) and the
database must hold one row, as one serial order of the successful requests would
leave it. The ETag a successful write returns is the version it wrote, so the
successes must carry the versions 1..n exactly once each, and the stored messages
are those of the write that returned the highest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agent_runtime.services.approvals import get_approval
from agent_runtime.services.database import close_db, get_connection, init_database
from agent_runtime.services.messages import stored_messages
from agent_runtime.services.sessions import get_session_version
from models import PendingApproval, Session
from tests.fixtures.backends import BACKENDS, Backend, Databases
from tests.fixtures.servers import LiveServer
from tests.reliability.connections import Response, WorkerConnection, spread_connections
from tests.reliability.deployment import WORKERS, fresh_backend, log_problems, uvicorn_group
from tests.reliability.load import SOAK_SECONDS, TEST_TIMEOUT, publish
from tests.reliability.verify import stored_as_sent
from tests.reliability.workload import Message

RACERS = 32  # clients sending the same request at the same instant, one connection each
ROUNDS = max(5, int(SOAK_SECONDS))  # races per test, each on new ids

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    return fresh_backend(databases, request.param)


@pytest.fixture(scope="module")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_dir = tmp_path_factory.mktemp(f"races-{backend.name}")
    with uvicorn_group(backend.url, log_dir, WORKERS[backend.name]) as live:
        yield live
        problems = log_problems(live)
        assert problems == [], "\n".join(problems[:20])


class Racers:
    """One connection per racer, spread evenly over the server's workers."""

    def __init__(self, connections: list[WorkerConnection]) -> None:
        self.connections = connections

    async def post(
        self, paths: list[str], bodies: list[Any], headers: list[dict[str, str]] | None = None
    ) -> list[Response]:
        """Racer i posts bodies[i] to paths[i], all at once."""
        return await asyncio.gather(
            *(
                c.request("POST", paths[i], bodies[i], headers[i] if headers else None)
                for i, c in enumerate(self.connections[: len(bodies)])
            )
        )


@pytest.fixture
async def racers(server: LiveServer, backend: Backend) -> AsyncIterator[Racers]:
    connections = await spread_connections(
        server.url, server.process.pid, RACERS, WORKERS[backend.name]
    )
    try:
        yield Racers(connections)
    finally:
        for connection in connections:
            await connection.close()


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Any]:
    """The service API on the server's database, to check what was stored."""
    await init_database(backend.url)
    try:
        yield get_connection()
    finally:
        await close_db()


def conversation(racer: int, tag: str) -> list[Message]:
    """A message list of its own for each racer, of varying length."""
    messages: list[Message] = [{"role": "user", "content": f"racer {racer} of {tag}"}]
    for i in range(racer % 4):
        messages.append({"role": "assistant", "content": f"reply {i} to racer {racer}"})
    return messages


def versions(responses: list[Response]) -> list[int]:
    return sorted(int(r.headers["etag"].strip('"')) for r in responses if r.status == 200)


def statuses(responses: list[Response]) -> set[int]:
    return {r.status for r in responses}


def answers(responses: list[Response]) -> list[tuple[int, bytes]]:
    return [(r.status, r.body) for r in responses]


async def test_many_clients_saving_the_same_new_session_at_once(racers, db, request, backend):
    """Unconditional saves, `If-Match: "1"` and `If-Match: *`, all on a new id at once."""
    conflicts = 0
    for round_ in range(ROUNDS):
        session_id = f"race-new-{round_}-{uuid.uuid4().hex[:8]}"
        kinds = [{}, {}, {"If-Match": '"1"'}, {"If-Match": "*"}]
        sent = [conversation(i, session_id) for i in range(RACERS)]
        responses = await racers.post(
            [f"/sessions/{session_id}"] * RACERS, sent, [kinds[i % 4] for i in range(RACERS)]
        )

        assert statuses(responses) <= {200, 412}, answers(responses)
        unconditional = [r for i, r in enumerate(responses) if i % 4 < 2]
        assert statuses(unconditional) == {200}, answers(unconditional)
        conflicts += sum(r.status == 412 for r in responses)
        won = versions(responses)
        assert won == list(range(1, len(won) + 1)), "each success must write its own version"
        last = next(i for i, r in enumerate(responses) if r.headers.get("etag") == f'"{len(won)}"')
        assert await Session.filter(id=session_id).using_db(db).count() == 1
        assert await get_session_version(db, session_id) == len(won)
        assert stored_as_sent(await stored_messages(db, session_id), sent[last])
    publish(request, backend.name, f"{ROUNDS} rounds of {RACERS} racers, {conflicts} got 412")


async def test_conditional_saves_of_one_version_let_exactly_one_win(racers, db):
    for round_ in range(ROUNDS):
        session_id = f"race-if-match-{round_}-{uuid.uuid4().hex[:8]}"
        path = f"/sessions/{session_id}"
        created = await racers.connections[0].request("POST", path, conversation(99, session_id))
        assert created.status == 200 and created.headers["etag"] == '"1"'
        sent = [conversation(i, f"{session_id} edit") for i in range(RACERS)]
        responses = await racers.post([path] * RACERS, sent, [{"If-Match": '"1"'}] * RACERS)

        assert sorted(r.status for r in responses) == [200] + [412] * (RACERS - 1), answers(
            responses
        )
        assert all(
            r.json()["error"]["code"] == "precondition_failed" for r in responses if r.status == 412
        )
        winner = next(i for i, r in enumerate(responses) if r.status == 200)
        assert responses[winner].headers["etag"] == '"2"'
        assert await Session.filter(id=session_id).using_db(db).count() == 1
        assert await get_session_version(db, session_id) == 2
        assert stored_as_sent(await stored_messages(db, session_id), sent[winner])


async def test_appends_to_the_same_new_session_at_once_all_land_in_one_order(racers, db):
    for round_ in range(ROUNDS):
        session_id = f"race-append-{round_}-{uuid.uuid4().hex[:8]}"
        blocks = [conversation(i, session_id) for i in range(RACERS)]
        responses = await racers.post([f"/sessions/{session_id}/messages"] * RACERS, blocks)

        assert statuses(responses) == {200}, answers(responses)
        assert versions(responses) == list(range(1, RACERS + 1))
        # The version a racer's append wrote is its place in the serial order.
        order = sorted(range(RACERS), key=lambda i: int(responses[i].headers["etag"].strip('"')))
        expected = [m for i in order for m in blocks[i]]
        assert await Session.filter(id=session_id).using_db(db).count() == 1
        assert stored_as_sent(await stored_messages(db, session_id), expected)


async def test_two_clients_deciding_the_same_approval_one_wins(racers, db, request, backend):
    pairs = RACERS // 2  # approvals decided per round, each by two clients at once
    decisions = [
        {"status": "approved", "decided_by": "alice"},
        {"status": "rejected", "decided_by": "bob"},
    ]
    for round_ in range(ROUNDS):
        call_ids = [f"race-decide-{round_}-{i}-{uuid.uuid4().hex[:8]}" for i in range(pairs)]
        created = await racers.post(
            ["/approvals"] * pairs,
            [{"session_id": "race", "call_id": c, "tool_name": "delete_file"} for c in call_ids],
        )
        assert statuses(created) == {201}, answers(created)
        # Racers 2i and 2i+1 (on different workers) decide approval i differently.
        responses = await racers.post(
            [f"/approvals/{c}/decision" for c in call_ids for _ in (0, 1)],
            [decisions[k] for _ in call_ids for k in (0, 1)],
        )

        for i, call_id in enumerate(call_ids):
            alice, bob = responses[2 * i], responses[2 * i + 1]
            assert sorted([alice.status, bob.status]) == [200, 409], answers([alice, bob])
            winner, loser = (alice, bob) if alice.status == 200 else (bob, alice)
            assert loser.json()["error"]["code"] == "conflict"
            decided = winner.json()
            assert await PendingApproval.filter(call_id=call_id).using_db(db).count() == 1
            row = await get_approval(db, call_id)
            assert row is not None
            assert (row["status"], row["decided_by"]) == (decided["status"], decided["decided_by"])
            assert row["decided_at"] is not None
    publish(request, backend.name, f"{ROUNDS * pairs} approvals decided by two clients at once")


async def test_the_same_approval_recorded_at_once_is_stored_once(racers, db):
    """Half the racers send one content, half another, under one call_id."""
    for round_ in range(ROUNDS):
        call_id = f"race-create-{round_}-{uuid.uuid4().hex[:8]}"
        contents = [
            {"session_id": "race", "call_id": call_id, "tool_name": "delete_file"},
            {"session_id": "race", "call_id": call_id, "tool_name": "send_email", "reason": "x"},
        ]
        responses = await racers.post(
            ["/approvals"] * RACERS, [contents[i % 2] for i in range(RACERS)]
        )

        assert statuses(responses) <= {200, 201, 409}, answers(responses)
        assert 201 in statuses(responses)
        assert await PendingApproval.filter(call_id=call_id).using_db(db).count() == 1
        row = await get_approval(db, call_id)
        assert row is not None
        kept = next(c for c in contents if c["tool_name"] == row["tool_name"])
        assert row["reason"] == kept.get("reason")
        for i, response in enumerate(responses):
            same = contents[i % 2] is kept
            assert response.status in ((200, 201) if same else (409,)), response.body
