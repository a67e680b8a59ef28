"""Human in the loop through restarts, crashes and a database outage, on real uvicorn
processes.

- The event stream resumes exactly once across a restart: a client that stopped at
  some id reconnects to a new server with `Last-Event-ID` and receives every later
  event (written by the stopped server, by another server, and live) exactly once,
  in order, as `GET /approvals/{id}/events` records it.
- `kill -9` of the whole service under approval load: every acknowledged create,
  decision and claim has its event in the log, and the approval's state matches its
  events; a request the kill left unanswered is there completely or not at all.
- PostgreSQL stopped while waits are in flight (PostgreSQL only, on a private
  cluster): each wait answers 200 (still pending) or 503 with the JSON error body,
  never a 500 or a hang; once PostgreSQL is back, the LISTEN connection reconnects
  and a decision wakes its waiter again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.backends import BACKENDS, Backend, Databases
from tests.fixtures.servers import LiveServer, start_uvicorn
from tests.reliability.connections import Unanswered, WorkerConnection, spread_connections
from tests.reliability.deployment import fresh_backend
from tests.reliability.hitl import (
    DECISIONS,
    StreamEvent,
    TimedWait,
    approval_body,
    as_logged,
    create_approvals,
    in_batches,
    log_tracebacks,
    read_stream,
    running_servers,
    timed_wait,
)
from tests.reliability.own_postgres import PrivatePostgres, migrated_private_postgres


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    """A new, empty database: these tests read the whole event log."""
    return fresh_backend(databases, request.param)


async def decide(http: httpx.AsyncClient, call_id: str, status: str, by: str) -> None:
    body = {"status": status, "decided_by": by, "message": f"{status} by {by}"}
    response = await http.post(f"/approvals/{call_id}/decision", json=body)
    assert response.status_code == 200, response.text


async def run_to_the_end(http: httpx.AsyncClient, call_id: str, by: str) -> None:
    """Claim an approved call and report its outcome."""
    claim = await http.post(f"/approvals/{call_id}/claim", json={"claimed_by": by})
    assert claim.status_code == 200, claim.text
    report = {"claim_token": claim.json()["claim_token"], "status": "executed", "result": [1]}
    response = await http.post(f"/approvals/{call_id}/result", json=report)
    assert response.status_code == 200, response.text


async def write_history(
    http: httpx.AsyncClient, session_id: str, call_ids: list[str], by: str
) -> None:
    """Events of every kind: create each call, decide it (approved, rejected or
    cancelled in turn), and run the approved ones to their outcome."""
    await create_approvals(http, session_id, call_ids, batch=4)
    for i, call_id in enumerate(call_ids):
        status = DECISIONS[i % len(DECISIONS)]
        await decide(http, call_id, status, by)
        if status == "approved":
            await run_to_the_end(http, call_id, by)


async def logged_events(http: httpx.AsyncClient, call_ids: list[str]) -> list[dict[str, Any]]:
    """Every event of the calls, as `GET /approvals/{id}/events` records them, by id."""

    async def trail(call_id: str) -> list[dict[str, Any]]:
        response = await http.get(f"/approvals/{call_id}/events")
        assert response.status_code == 200, response.text
        return list(response.json())

    trails = await in_batches(call_ids, 20, trail)
    return sorted((e for t in trails for e in t), key=lambda e: e["id"])


def stream_problems(received: list[StreamEvent], expected: list[dict[str, Any]]) -> list[str]:
    """How the stream differs from the log: SSE fields, order, content."""
    problems = []
    ids = [e.id for e in received]
    if ids != sorted(set(ids)):
        problems.append(f"ids not strictly increasing: {ids}")
    for event in received:
        if event.sse_id != str(event.data["id"]) or event.sse_event != event.data["type"]:
            problems.append(f"id:/event: {event.sse_id}/{event.sse_event} for {event.data}")
    got = [as_logged(e.data) for e in received]
    want = [as_logged(e) for e in expected]
    if got != want:
        missing = sorted({e["id"] for e in want} - {e["id"] for e in got})
        extra = sorted({e["id"] for e in got} - {e["id"] for e in want})
        doubled = sorted(i for i, n in Counter(ids).items() if n > 1)
        problems.append(
            f"stream != log: {len(got)} events received, {len(want)} expected; missing ids "
            f"{missing[:20]}, unexpected {extra[:20]}, doubled {doubled[:20]}"
        )
        problems += [
            f"first difference: received {g}, logged {w}"
            for g, w in zip(got, want, strict=False)
            if g != w
        ][:1]
    return problems


# -- 4. the event stream resumes exactly once across a restart -----------------------------

STREAM_SECONDS = 20.0  # the longest a test waits for events it knows were written
CUT_AFTER = 5  # the first client reads this many events, then goes away


async def stream_until(
    http: httpx.AsyncClient,
    stop: Any,
    *,
    last_event_id: int | None = None,
    after: int | None = None,
    seconds: float = STREAM_SECONDS,
) -> list[StreamEvent]:
    """Read `GET /events` until `stop(events so far)` is true (at most `seconds`)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    params = {} if after is None else {"after": after}
    events: list[StreamEvent] = []

    async def read() -> None:
        async with http.stream("GET", "/events", headers=headers, params=params) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in read_stream(response):
                events.append(event)
                if stop(events):
                    return
        raise AssertionError(f"the stream ended after {len(events)} events")

    try:
        await asyncio.wait_for(read(), seconds)
    except TimeoutError:
        raise AssertionError(
            f"the stream stalled after {len(events)} events: {[e.id for e in events]}"
        ) from None
    return events


@pytest.mark.timeout(150)
async def test_the_event_stream_resumes_exactly_once_across_a_restart(
    backend: Backend, tmp_path: Path
) -> None:
    session_id = f"stream-{uuid.uuid4().hex[:8]}"

    def calls(phase: str, n: int) -> list[str]:
        return [f"{session_id}-{phase}-{i}" for i in range(n)]

    left_pending = calls("p1-pending", 2)
    all_calls = [*calls("p1", 3), *left_pending]

    # Server 1: a client follows the stream live, and goes away after CUT_AFTER events.
    first = start_uvicorn(backend.url, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            reader = asyncio.create_task(
                stream_until(http, lambda seen: len(seen) == CUT_AFTER, after=0)
            )
            await asyncio.sleep(0.5)  # the stream is open before the first write
            await write_history(http, session_id, calls("p1", 3), "server-1")
            await create_approvals(http, session_id, left_pending)
            seen_before = await reader
            cut = seen_before[-1].id
            # More events the client does not see, and a stream still open (a client
            # that stopped reading) while the server stops.
            await write_history(http, session_id, calls("p2", 3), "server-1")
            all_calls += calls("p2", 3)
            async with http.stream("GET", "/events", params={"after": 0}) as idle:
                assert idle.status_code == 200
                graceful = await asyncio.to_thread(first.stop)
        assert graceful, f"server 1 did not stop gracefully\n{first.output()[-5000:]}"
    finally:
        first.stop()

    with running_servers(backend.url, tmp_path, 1, workers=1) as (second,):
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as on_second:
            # Server 2 writes while nobody reads.
            for call_id in left_pending:
                await decide(on_second, call_id, "rejected", "server-2")
            await write_history(on_second, session_id, calls("p3", 3), "server-2")
            all_calls += calls("p3", 3)

            # A new server starts; the client comes back to it with the last id it saw.
            # Server 2 goes on writing meanwhile: those events arrive live (server 3
            # learns of them from the database only).
            with running_servers(backend.url, tmp_path, 1, workers=1) as (third,):
                async with httpx.AsyncClient(base_url=third.url, timeout=30) as on_third:
                    sentinel = f"{session_id}-sentinel"
                    resumed = asyncio.create_task(
                        stream_until(
                            on_third,
                            lambda seen: seen[-1].data["call_id"] == sentinel,
                            last_event_id=cut,
                        )
                    )
                    await asyncio.sleep(0.5)
                    await write_history(on_second, session_id, calls("p4", 3), "server-2")
                    all_calls += calls("p4", 3)
                    await create_approvals(on_second, session_id, [sentinel])
                    received = await resumed

                    logged = await logged_events(on_third, [*all_calls, sentinel])

    assert [e.id for e in seen_before] == [e["id"] for e in logged[:CUT_AFTER]]
    expected = [e for e in logged if e["id"] > cut]
    assert expected[-1]["call_id"] == sentinel
    problems = stream_problems(received, expected)
    assert problems == [], "\n".join(problems)
    types = Counter(e.sse_event for e in received)
    print(
        f"\n{backend}: cut at id {cut}, then {len(received)} events received exactly once "
        f"across the restart ({dict(types)})"
    )
    for server in (first, second, third):
        assert log_tracebacks(server) == [], server.errors()[-5000:]


# -- 5. kill -9: what was acknowledged has its event ---------------------------------------

CLIENTS = 12
LOAD_SECONDS = 3.0
REQUEST_TIMEOUT = 30.0


@dataclass
class CallLedger:
    """What one client sent for one call, and what the service acknowledged."""

    call_id: str
    body: dict[str, Any]
    decision: str
    by: str
    created: str | None = None  # "acked" or "in_doubt" (sent, no answer)
    decided: str | None = None
    claimed: str | None = None


@dataclass
class CrashLoad:
    ledgers: list[CallLedger] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)


async def approval_client(connection: WorkerConnection, name: str, load: CrashLoad) -> None:
    """Create, decide, and claim the approved calls, one request at a time, until the
    connection dies; the ledger tells which requests were answered 2xx."""

    async def send(ledger: CallLedger, step: str, method: str, path: str, body: Any) -> bool:
        setattr(ledger, step, "in_doubt")
        response = await asyncio.wait_for(connection.request(method, path, body), REQUEST_TIMEOUT)
        load.answers[response.status] += 1
        if 200 <= response.status < 300:
            setattr(ledger, step, "acked")
            return True
        setattr(ledger, step, None)  # refused: nothing changed
        load.unexpected.append(f"{method} {path} -> {response.status} {response.body[:300]!r}")
        return False

    n = 0
    try:
        while True:
            n += 1
            call_id = f"{name}-{n}"
            ledger = CallLedger(
                call_id,
                approval_body(f"crash-{name}", call_id),
                DECISIONS[n % len(DECISIONS)],
                name,
            )
            load.ledgers.append(ledger)
            if not await send(ledger, "created", "POST", "/approvals", ledger.body):
                return
            decision = {"status": ledger.decision, "decided_by": name}
            if not await send(
                ledger, "decided", "POST", f"/approvals/{call_id}/decision", decision
            ):
                return
            if ledger.decision == "approved" and not await send(
                ledger, "claimed", "POST", f"/approvals/{call_id}/claim", {"claimed_by": name}
            ):
                return
    except (Unanswered, TimeoutError):
        return  # the kill: the last request is in doubt


DECISION_EVENT = {
    "approved": "approval.decided",
    "rejected": "approval.decided",
    "cancelled": "approval.cancelled",
}


def crash_problems(
    ledger: CallLedger, approval: dict[str, Any] | None, events: list[dict[str, Any]] | None
) -> list[str]:
    """How the stored approval and its events differ from what the client was told."""
    where = f"{ledger.call_id} (created {ledger.created}, decided {ledger.decided}, claimed "
    where += f"{ledger.claimed})"
    if approval is None or events is None:
        if ledger.created == "acked" or (approval is None) != (events is None):
            return [f"{where}: approval {approval is not None}, events {events is not None}"]
        return []  # created in doubt, and not stored: allowed
    problems = []
    types = [e["type"] for e in events]
    # The state the events describe must be the stored state, each event once.
    status = approval["status"]
    if status == "pending":
        want = ["approval.created"]
    elif status == "claimed":
        want = ["approval.created", "approval.decided", "approval.claimed"]
    else:
        want = ["approval.created", DECISION_EVENT[status]]
    if types != want:
        problems.append(f"{where}: status {status} but events {types}")
    ids = [e["id"] for e in events]
    if ids != sorted(set(ids)):
        problems.append(f"{where}: event ids {ids}")
    created = events[0] if events else {}
    if created.get("data") != {"tool_name": "delete_file", "arguments": ledger.body["arguments"]}:
        problems.append(f"{where}: created event {created}")
    # What was acknowledged happened; what was in doubt happened completely or not at all.
    allowed = {"pending"}
    if ledger.decided == "acked":
        allowed = {ledger.decision}
    elif ledger.decided == "in_doubt":
        allowed.add(ledger.decision)
    if ledger.claimed == "acked":
        allowed = {"claimed"}
    elif ledger.claimed == "in_doubt":
        allowed.add("claimed")
    if status not in allowed:
        problems.append(f"{where}: stored status {status}, allowed {sorted(allowed)}")
    decided = [e for e in events if e["type"] in DECISION_EVENT.values()]
    if decided and (
        decided[0]["actor"] != ledger.by or decided[0]["data"]["status"] != ledger.decision
    ):
        problems.append(f"{where}: decision event {decided[0]}")
    return problems


@pytest.mark.timeout(150)
async def test_kill_9_keeps_the_event_of_every_acknowledged_write(
    backend: Backend, tmp_path: Path
) -> None:
    load = CrashLoad()
    prefix = f"crash-{uuid.uuid4().hex[:6]}"
    with running_servers(backend.url, tmp_path, 1, workers=2) as (server,):
        connections = await spread_connections(server.url, server.process.pid, CLIENTS, 2)
        clients = asyncio.gather(
            *(approval_client(c, f"{prefix}-c{i}", load) for i, c in enumerate(connections))
        )
        await asyncio.sleep(LOAD_SECONDS)
        assert not clients.done(), "the clients stopped before the kill"
        server.kill()  # SIGKILL to the process group: master and workers at once
        await asyncio.wait_for(clients, REQUEST_TIMEOUT + 5)
        killed = server
    assert load.unexpected == [], "\n".join(load.unexpected[:20])
    in_doubt = sum(
        1
        for ledger in load.ledgers
        for step in ("created", "decided", "claimed")
        if getattr(ledger, step) == "in_doubt"
    )
    assert 0 < in_doubt <= CLIENTS

    with running_servers(backend.url, tmp_path, 1, workers=1) as (restarted,):
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as http:

            async def stored(ledger: CallLedger) -> tuple[Any, Any]:
                approval = await http.get(f"/approvals/{ledger.call_id}")
                events = await http.get(f"/approvals/{ledger.call_id}/events")
                assert approval.status_code in (200, 404), approval.text
                assert events.status_code in (200, 404), events.text
                return (
                    approval.json() if approval.status_code == 200 else None,
                    events.json() if events.status_code == 200 else None,
                )

            found = await in_batches(load.ledgers, 20, stored)
            per_call = [events for _, events in found if events is not None]
            in_log = sorted((e for events in per_call for e in events), key=lambda e: e["id"])
            # The whole log, through the restarted server's stream: exactly the calls'
            # events (nothing else was written), in order.
            streamed = await stream_until(
                http, lambda seen: seen[-1].id == in_log[-1]["id"], after=0
            )
        assert log_tracebacks(restarted) == [], restarted.errors()[-5000:]

    problems = [
        p
        for ledger, (a, e) in zip(load.ledgers, found, strict=True)
        for p in crash_problems(ledger, a, e)
    ]
    assert problems == [], "\n".join(problems[:30])
    problems = stream_problems(streamed, in_log)
    assert problems == [], "\n".join(problems)
    acked = Counter(
        step
        for ledger in load.ledgers
        for step in ("created", "decided", "claimed")
        if getattr(ledger, step) == "acked"
    )
    stored_states = Counter(a["status"] for a, _ in found if a is not None)
    print(
        f"\n{backend}: kill -9 after {sum(load.answers.values())} answered requests "
        f"({dict(acked)} acknowledged, {in_doubt} in doubt); after the restart "
        f"{len(in_log)} events, states {dict(stored_states)}"
    )
    # Before the kill, no request failed inside the server.
    assert log_tracebacks(killed) == [], killed.errors()[-5000:]


# -- 6. PostgreSQL stopped while waits are in flight ---------------------------------------

DATABASE = "agent_runtime_hitl_outage"
WAIT_SECONDS = 5.0
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
# A wait answers at its timeout, after one more read of the approval: with the database
# down that read takes at most a connection attempt plus a statement. Plus slack.
WAIT_BOUND = WAIT_SECONDS + CONNECT_TIMEOUT + COMMAND_TIMEOUT + 1.5
OUTAGE_BOUND = CONNECT_TIMEOUT + COMMAND_TIMEOUT + 1.5  # any other request while down
RECOVERY_SECONDS = 15.0  # after `pg_ctl start` returned: service and notifications back
# A notification wakes a waiter within milliseconds; the server polls the log only every
# POLL_SECONDS, so a wake faster than NOTIFIED_BOUND shows LISTEN is working again.
POLL_SECONDS = 5.0
NOTIFIED_BOUND = 1.5
CONFIRMATIONS = 3  # fast wakes in a row (one could be a lucky poll)
OUTAGE_ENV = {
    "AGENT_RUNTIME__DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    "AGENT_RUNTIME__DB_COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
    "AGENT_RUNTIME__DB_POOL_MIN_SIZE": "2",
    "AGENT_RUNTIME__DB_POOL_MAX_SIZE": "5",
    "AGENT_RUNTIME__EVENT_POLL_SECONDS": str(POLL_SECONDS),
}


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster, migrated database `DATABASE`; always deleted."""
    with migrated_private_postgres(DATABASE) as pg:
        yield pg


def outage_answer_ok(wait: TimedWait) -> bool:
    """200 with the approval still pending, or 503 with the JSON error body."""
    if wait.status == 200:
        return wait.approval_status == "pending"
    return wait.status == 503 and wait.error_code == "unavailable"


@dataclass
class Wake:
    call_id: str
    wait: TimedWait
    decided_at: float | None  # when the decision's 200 arrived

    @property
    def after_decision(self) -> float | None:
        return None if self.decided_at is None else self.wait.ended - self.decided_at

    @property
    def notified(self) -> bool:
        return (
            self.wait.status == 200
            and self.wait.approval_status == "approved"
            and self.after_decision is not None
            and self.after_decision < NOTIFIED_BOUND
        )


async def wake_once(http: httpx.AsyncClient, call_id: str) -> Wake:
    """A fresh approval, a wait on it, a decision: how soon the wait answered."""
    created = await http.post("/approvals", json=approval_body("after-outage", call_id))
    if created.status_code != 201:
        return Wake(call_id, TimedWait(call_id, 0, 0, created.status_code, created.text), None)
    waiting = asyncio.create_task(timed_wait(http, call_id, WAIT_SECONDS))
    await asyncio.sleep(0.5)  # the wait has read the approval: pending
    decision = await http.post(
        f"/approvals/{call_id}/decision", json={"status": "approved", "decided_by": "back"}
    )
    decided_at = time.monotonic() if decision.status_code == 200 else None
    return Wake(call_id, await waiting, decided_at)


@pytest.mark.postgres
@pytest.mark.timeout(150)
async def test_waits_answer_through_a_postgres_outage_and_wake_again_after_it(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    pg = private_pg
    server: LiveServer = start_uvicorn(pg.url(DATABASE), tmp_path, env=OUTAGE_ENV)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=httpx.Timeout(WAIT_BOUND + 10)
        ) as http:
            session_id = f"outage-{uuid.uuid4().hex[:8]}"
            in_flight = [f"{session_id}-before-{i}" for i in range(6)]
            started_down = [f"{session_id}-during-{i}" for i in range(6)]
            await create_approvals(http, session_id, in_flight + started_down)
            # A stream following the log across the outage.
            stream = asyncio.create_task(
                stream_until(
                    http,
                    lambda seen: (
                        seen[-1].data["call_id"] == f"{session_id}-after-last"
                        and seen[-1].sse_event == "approval.decided"
                    ),
                    after=0,
                    seconds=150,
                )
            )

            waits = [asyncio.create_task(timed_wait(http, c, WAIT_SECONDS)) for c in in_flight]
            await asyncio.sleep(1.0)  # they have read their approval, and wait
            stop_called = time.monotonic()
            await asyncio.to_thread(pg.stop, "fast")
            stopped = time.monotonic()
            for call_id in started_down:
                waits.append(asyncio.create_task(timed_wait(http, call_id, WAIT_SECONDS)))
                await asyncio.sleep(0.3)
            ready_down = await http.get("/health/ready")
            answered = await asyncio.wait_for(asyncio.gather(*waits), WAIT_BOUND + 10)
            start_called = time.monotonic()
            await asyncio.to_thread(pg.start)
            back = time.monotonic()

            # The service recovers (no restart), then the notifications: retry with a
            # fresh approval until a decision wakes its waiter as only LISTEN can.
            wakes: list[Wake] = []
            while time.monotonic() - back < RECOVERY_SECONDS:
                wake = await wake_once(http, f"{session_id}-after-{len(wakes)}")
                wakes.append(wake)
                if len(wakes) >= CONFIRMATIONS and all(w.notified for w in wakes[-CONFIRMATIONS:]):
                    break
                if not wake.notified:
                    await asyncio.sleep(0.5)
            last = await wake_once(http, f"{session_id}-after-last")
            streamed = await stream
    finally:
        server.stop()

    timeline = (
        f"pg stop {stopped - stop_called:.2f} s, down {start_called - stopped:.2f} s, "
        f"start {back - start_called:.2f} s"
    )
    context = f"{timeline}\n{pg.server_log()[-3000:]}\n{server.output()[-10000:]}"
    bad = [w for w in answered if not outage_answer_ok(w)]
    assert bad == [], "\n".join(map(str, bad)) + f"\n{context}"
    slow = [w for w in answered if w.seconds > WAIT_BOUND]
    assert slow == [], "\n".join(map(str, slow)) + f"\n{context}"
    # Those started during the outage are refused at once (their first read fails).
    late = [w for w in answered[len(in_flight) :] if w.seconds > OUTAGE_BOUND]
    assert late == [], "\n".join(map(str, late)) + f"\n{context}"
    assert ready_down.status_code == 503, ready_down.text

    print(
        f"\noutage ({timeline}): waits answered "
        f"{dict(Counter(f'{w.status} {w.approval_status or w.error_code}' for w in answered))}, "
        f"slowest {max(w.seconds for w in answered):.2f} s; after the restart: "
        + ", ".join(
            f"{w.wait.status} {w.wait.approval_status or w.wait.error_code} woke "
            + (f"{w.after_decision:.2f} s after the decision" if w.after_decision else "-")
            for w in [*wakes, last]
        )
    )
    assert len(wakes) >= CONFIRMATIONS and all(w.notified for w in wakes[-CONFIRMATIONS:]), (
        f"no decision woke its waiter through LISTEN within {RECOVERY_SECONDS} s\n{context}"
    )
    assert last.notified and last.wait.seconds < WAIT_SECONDS, last
    # The stream stayed open through the outage and carried on.
    stream_ids = [e.data["call_id"] for e in streamed]
    assert stream_ids.count(last.call_id) == 2  # created, decided
    assert [e.id for e in streamed] == sorted({e.id for e in streamed})
    pool_floor_retries: list[str] = []
    assert log_tracebacks(server, excused=pool_floor_retries) == [], server.errors()[-10000:]
    print(f"asyncpg's pool-floor reconnection tracebacks in the log: {len(pool_floor_retries)}")
