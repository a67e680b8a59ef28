"""Graceful shutdown: SIGTERM to uvicorn's master under write load.

The workers stop taking requests, finish the ones in progress (their answers and
commits included), close their database connections and exit; no acknowledged
write is lost. One request is held in progress on purpose: its headers are sent
and the app has started reading its body (`Expect: 100-continue` answered) before
the SIGTERM, its body only once every worker is shutting down. It must still be
answered 200 and committed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from urllib.parse import urlsplit

import pytest

from agent_runtime.services.database import close_db, get_connection, init_database
from agent_runtime.services.messages import stored_messages
from tests.fixtures.backends import BACKENDS, Backend, Databases
from tests.reliability.connections import spread_connections
from tests.reliability.deployment import (
    WORKERS,
    fresh_backend,
    log_problems,
    uvicorn_group,
    wait_for_log,
)
from tests.reliability.load import (
    CLIENTS,
    REQUEST_TIMEOUT,
    SOAK_SECONDS,
    TEST_TIMEOUT,
    publish,
    run_load,
)
from tests.reliability.verify import stored_as_sent, verify_clients
from tests.reliability.workload import Message, make_clients

EXIT_TIMEOUT = 30.0  # seconds from SIGTERM to the master's exit


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, databases: Databases) -> Backend:
    return fresh_backend(databases, request.param)


class HeldRequest:
    """A POST whose body is sent only when the test says so."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes):
        self.reader, self.writer, self.body = reader, writer, body

    @classmethod
    async def start(cls, url: str, path: str, payload: object) -> HeldRequest:
        """Send the headers; return once the app reads the body (100 Continue)."""
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        body = json.dumps(payload).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        return cls(reader, writer, body)

    async def finish(self) -> tuple[int, bytes, bytes]:
        """Send the body; (status, body) of the answer, and what followed it until
        the server closed the connection (nothing, after a last answer)."""
        self.writer.write(self.body)
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        after = await asyncio.wait_for(self.reader.read(), REQUEST_TIMEOUT)
        self.writer.close()
        return int(status_line.split(" ", 2)[1]), body, after


async def stored_session(url: str, session_id: str) -> list[dict[str, object]]:
    await init_database(url)
    try:
        return await stored_messages(get_connection(), session_id)
    finally:
        await close_db()


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_sigterm_under_write_load_finishes_in_flight_requests_and_loses_nothing(
    backend: Backend, tmp_path, request
):
    workers = WORKERS[backend.name]
    prefix = f"term-{uuid.uuid4().hex[:8]}"
    clients = make_clients(CLIENTS, prefix=prefix, seed=3)
    held_messages: list[Message] = [
        {"role": "user", "content": "sent before the SIGTERM"},
        {"role": "assistant", "content": "body received after it"},
    ]

    with uvicorn_group(backend.url, tmp_path, workers) as server:
        connections = await spread_connections(server.url, server.process.pid, CLIENTS, workers)
        # The clients run until the shutdown stops each of them (the bound is a safety net).
        load = asyncio.create_task(
            run_load(clients, connections, SOAK_SECONDS + 2 * REQUEST_TIMEOUT)
        )
        await asyncio.sleep(SOAK_SECONDS)
        held = await HeldRequest.start(server.url, f"/sessions/{prefix}-held", held_messages)
        assert not load.done(), "the load ended before the SIGTERM"

        terminated_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert await wait_for_log(server, "Shutting down", workers, EXIT_TIMEOUT), server.errors()
        status, body, after = await held.finish()
        exit_code = await asyncio.to_thread(server.process.wait, EXIT_TIMEOUT)
        result = await load
        log = server.errors()
        problems_logged = log_problems(server)

    in_flight = [s for s in result.answered_after(terminated_at) if s.started < terminated_at]
    publish(
        request,
        f"{backend.name}, {workers} workers, SIGTERM",
        f"{result.summary()}; {len(in_flight)} requests in flight at SIGTERM answered after it",
    )

    assert (status, json.loads(body)) == (200, {"status": "saved"}), body
    assert after == b"", "the worker should close the connection after its last answer"
    assert exit_code in (0, -signal.SIGTERM), log
    # Every worker finished its requests, ran the app's shutdown (closing its
    # database connections) and exited.
    assert log.count("Application shutdown complete.") == workers, log
    assert log.count("Finished server process") == workers, log
    assert problems_logged == [], "\n".join(problems_logged[:20])
    assert result.server_errors == [], "\n".join(result.server_errors[:20])
    assert result.wrong_answers == [], "\n".join(result.wrong_answers[:20])
    assert [s for s in result.samples if s.status is None and s.ended < terminated_at] == []
    assert in_flight, "no request was in progress at the SIGTERM"

    sqlite_path = backend.database.sqlite_path
    if sqlite_path is not None:
        # The last connection to close checkpoints the WAL into the file and removes it.
        wal = sqlite_path.with_name(sqlite_path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    assert stored_as_sent(await stored_session(backend.url, f"{prefix}-held"), held_messages)
    checked = await verify_clients(backend.url, clients, other_sessions=[f"{prefix}-held"])
    publish(request, "database", checked.summary())
    assert checked.problems == [], checked.report()
