"""The load generator: clients of `workload` against a live server, for a while.

Each client sends one request at a time over its own keep-alive connection (see
`connections`: spread evenly over the server's workers; harness/loadclient.py).
Every answer is checked against the client's ledger as it arrives; a request
without an answer, or with a 5xx, stops its client (what it wrote is then in doubt).

`AGENT_RUNTIME_SOAK_SECONDS` sets how long a load runs: a few seconds by default
(CI), `make soak` sets 60.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.latency import latency_ms
from harness.loadclient import Connection, Unanswered
from tests.reliability.workload import Client

__all__ = [
    "CLIENTS",
    "REQUEST_TIMEOUT",
    "SOAK_SECONDS",
    "TEST_TIMEOUT",
    "LoadResult",
    "Sample",
    "publish",
    "run_load",
]

SOAK_SECONDS = float(os.environ.get("AGENT_RUNTIME_SOAK_SECONDS", "5"))
if not SOAK_SECONDS > 0:
    raise ValueError(f"AGENT_RUNTIME_SOAK_SECONDS must be positive, got {SOAK_SECONDS}")
CLIENTS = 64
REQUEST_TIMEOUT = 30.0  # seconds without an answer: the request counts as unanswered
# A test runs at most a few loads plus server starts, stops and verification.
TEST_TIMEOUT = int(2 * SOAK_SECONDS + 3 * REQUEST_TIMEOUT + 120)


@dataclass(frozen=True, slots=True)
class Sample:
    client: int
    worker: int | None  # pid of the uvicorn worker that served it
    op: str
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no answer (connection refused or dropped, timeout)


@dataclass
class LoadResult:
    started: float
    ended: float
    samples: list[Sample] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)  # unexpected status or content
    server_errors: list[str] = field(default_factory=list)  # 5xx
    unanswered: list[str] = field(default_factory=list)

    def answered_after(self, instant: float) -> list[Sample]:
        """Requests answered after `instant` (a time.monotonic() value)."""
        return [s for s in self.samples if s.status is not None and s.ended > instant]

    def summary(self) -> str:
        answered = [s for s in self.samples if s.status is not None]
        seconds = self.ended - self.started
        by_status = Counter(f"{s.status // 100}xx" for s in answered)
        ops = Counter(s.op for s in self.samples)
        per_client = Counter(s.client for s in answered)
        per_worker = sorted(Counter(s.worker for s in answered).values())
        latency = latency_ms([s.ended - s.started for s in answered], "p50", "p99")
        p50, p99 = (float("nan") if v is None else v for v in latency.values())
        return (
            f"{len(self.samples)} requests in {seconds:.1f} s "
            f"({len(answered) / seconds:.0f} answered/s); "
            + ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
            + "; "
            + ", ".join(f"{k} {n}" for k, n in sorted(by_status.items()))
            + f"; 5xx {len(self.server_errors)}, unanswered {len(self.unanswered)}, "
            f"wrong answers {len(self.wrong_answers)}; latency p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms; answered per client min {min(per_client.values(), default=0)}"
            f" max {max(per_client.values(), default=0)}; answered per worker {per_worker}"
        )


async def run_load(
    clients: list[Client],
    connections: list[Connection],
    seconds: float,
    *,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """Run each client on its connection (client i on connection i) until `seconds`
    have passed, `stop` is set, or it gets no answer or a 5xx."""
    connections = connections[: len(clients)]
    stop = stop or asyncio.Event()
    result = LoadResult(time.monotonic(), 0.0)
    deadline = result.started + seconds

    def at(instant: float) -> str:
        return f"t=+{instant - result.started:.2f}s"

    async def drive(client: Client, connection: Connection) -> None:
        def sample(op: str, started: float, ended: float, status: int | None) -> Sample:
            return Sample(client.index, connection.worker, op, started, ended, status)

        try:
            while time.monotonic() < deadline and not stop.is_set():
                request = client.next_request()
                started = time.monotonic()
                try:
                    response = await asyncio.wait_for(
                        connection.request(request.method, request.path, request.body),
                        REQUEST_TIMEOUT,
                    )
                except (Unanswered, TimeoutError) as exc:
                    ended = time.monotonic()
                    request.unanswered()
                    result.samples.append(sample(request.op, started, ended, None))
                    result.unanswered.append(f"{at(ended)} {request.op} {request.path}: {exc!r}")
                    return
                ended = time.monotonic()
                result.samples.append(sample(request.op, started, ended, response.status))
                data = _decode(response.body)
                if response.status >= 500:
                    request.unanswered()  # "nothing was saved", says the body: not trusted
                    result.server_errors.append(
                        f"{at(ended)} {request.op} {request.path}: {response.status} {data!r}"
                    )
                    return
                problem = request.answered(response.status, data)
                if problem is not None:
                    result.wrong_answers.append(f"{at(ended)} {problem}")
        finally:
            with contextlib.suppress(Exception):  # the server may be gone
                await connection.close()

    try:
        pairs = zip(clients, connections, strict=True)
        await asyncio.gather(*(drive(client, connection) for client, connection in pairs))
    finally:
        result.ended = time.monotonic()
    return result


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200]


def publish(request: pytest.FixtureRequest, title: str, text: str) -> None:
    """Show a test's figures in the terminal, also when output is captured."""
    line = f"\n[{request.node.name}] {title}: {text}"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
