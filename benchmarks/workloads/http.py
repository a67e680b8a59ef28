"""HTTP through a real uvicorn serving this project's app: 64 keep-alive connections, each
on its own session, doing POST /sessions/{id} (the whole conversation plus one message)
and GET /sessions/{id} for a fixed time. The load generator runs in this process and
shares the machine's cores with the server; the CPU each used is reported beside the
numbers, so a client-bound run shows as one."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.config import Config
from benchmarks.data import appended, conversation
from harness.latency import latency_ms
from harness.loadclient import Connection, Unanswered
from harness.ports import LOOPBACK
from harness.servers import LiveServer, ServerStartError, start_uvicorn

__all__ = ["Checks", "cpu_seconds", "run", "serve"]

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0


class Checks:
    """Wrong answers: what makes the numbers meaningless (the run then exits 1)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(problem[:300])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """The CPU time the servers (`pids`), a PgBouncer and this process spend from the
    window's creation to `loads`, as loads: CPU seconds per wall second (1.0 = one
    core busy)."""

    def __init__(self, pids: list[int], bouncer_pid: int | None = None) -> None:
        self.pids, self.bouncer_pid = pids, bouncer_pid
        self._server = self._servers()
        self._bouncer = cpu_seconds(bouncer_pid) if bouncer_pid else None
        self._client = time.process_time()

    def _servers(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids)

    def loads(self, elapsed: float) -> dict[str, float | None]:
        bouncer = None
        if self._bouncer is not None and self.bouncer_pid:
            bouncer = (cpu_seconds(self.bouncer_pid) or self._bouncer) - self._bouncer
        return {
            "server_cpu_load": (self._servers() - self._server) / elapsed,
            "client_cpu_load": (time.process_time() - self._client) / elapsed,
            "pgbouncer_cpu_load": None if bouncer is None else bouncer / elapsed,
        }


async def finish_within(tasks: list[asyncio.Task[Any]], seconds: float) -> None:
    """Wait for `tasks` up to `seconds`; cancel those still running, and wait for them."""
    _, stragglers = await asyncio.wait(tasks, timeout=seconds)
    for task in stragglers:
        task.cancel()
    await asyncio.gather(*stragglers, return_exceptions=True)


async def _drive(port: int, cfg: Config, prefix: str, server_pid: int) -> dict[str, Any]:
    n = cfg.http_connections
    connections = [Connection(LOOPBACK, port) for _ in range(n)]
    paths = [f"/sessions/{prefix}-h{i}" for i in range(n)]
    histories = [conversation(cfg.client_start) for _ in range(n)]
    latencies: list[float] = []
    ops = [0] * n
    errors: list[str] = []
    deadline = 0.0
    start = asyncio.Event()

    async def request(i: int, method: str, body: Any = None) -> bool:
        began = time.perf_counter()
        try:
            response = await connections[i].request(method, paths[i], body)
        except Unanswered as exc:
            errors.append(str(exc)[:200])
            return False
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            errors.append(f"{method} {response.status}: {response.body[:200]!r}")
            return False
        return True

    async def client(i: int) -> None:
        await start.wait()
        messages = histories[i]
        while time.perf_counter() < deadline:
            after = appended(messages)
            if await request(i, "POST", after) and await request(i, "GET"):
                ops[i] += 1
                messages = after

    try:
        # Seeding concurrently also opens every connection before the clock starts.
        seeded = await asyncio.gather(
            *(connections[i].request("POST", paths[i], histories[i]) for i in range(n))
        )
        failed = [r.status for r in seeded if r.status != 200]
        if failed:
            raise RuntimeError(f"seeding failed: {failed[:3]}")
        tasks = [asyncio.create_task(client(i)) for i in range(n)]
        await asyncio.sleep(0)
        server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
        began = time.perf_counter()
        deadline = began + cfg.http_seconds
        start.set()
        _, stragglers = await asyncio.wait(tasks, timeout=cfg.http_seconds + cfg.grace_seconds)
        for task in stragglers:
            task.cancel()
        await asyncio.gather(*stragglers, return_exceptions=True)
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - client_cpu
        server_end = cpu_seconds(server_pid)
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return {
        "connections": n,
        "seconds": elapsed,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        **latency_ms(latencies, "p50", "p99"),
        "min_connection_ops": min(ops),
        "errors": len(errors),
        "first_errors": errors[:3],
        # CPU seconds per wall second (1.0 = one core busy): who the bottleneck is.
        "server_cpu_load": None
        if server_cpu is None or server_end is None
        else (server_end - server_cpu) / elapsed,
        "client_cpu_load": client_cpu / elapsed,
    }


@asynccontextmanager
async def serve(
    app: str, env: dict[str, str], what: str, *, workers: int = 1
) -> AsyncIterator[LiveServer]:
    """Run `uvicorn <app>` (the flags every HTTP workload uses) on a free port with `env`
    added to this process's environment (but its API key), once /health/ready answers
    200. A failure inside carries the server's output.

    `workers` > 1: uvicorn's `--workers`, logging at info level (lifecycle lines only;
    no access log) so that it is ready once every worker has finished its start-up;
    `worker_pids` then holds the workers' pids (with one worker: uvicorn's own)."""
    level = "warning" if workers == 1 else "info"
    args = ["--log-level", level, "--no-access-log"]
    with tempfile.TemporaryDirectory(prefix="bench-uvicorn-") as log_dir:
        try:
            server = await asyncio.to_thread(
                start_uvicorn,
                env,
                Path(log_dir),
                app=app,
                workers=workers,
                args=args,
                keep_settings=True,
                timeout=_START_TIMEOUT,
            )
        except ServerStartError as exc:
            tail = exc.output[-2000:]
            raise RuntimeError(f"{what} failed: {exc.reason}\nserver output:\n{tail}") from exc
        try:
            await asyncio.to_thread(server.wait_for_workers, _START_TIMEOUT)
            yield server
        except Exception as exc:
            reason = exc.reason if isinstance(exc, ServerStartError) else exc
            tail = server.log_tail()
            raise RuntimeError(f"{what} failed: {reason}\nserver output:\n{tail}") from exc
        finally:
            await asyncio.to_thread(server.stop, _STOP_TIMEOUT)


async def run(url: str, cfg: Config, prefix: str) -> dict[str, Any]:
    """Serve `url` (already migrated) with uvicorn on a free port and drive it."""
    env = {"AGENT_RUNTIME__DB_URL": url, "AGENT_RUNTIME__LOG_LEVEL": "warning"}
    async with serve("agent_runtime.main:app", env, "HTTP workload") as server:
        return await _drive(server.port, cfg, prefix, server.pid)
