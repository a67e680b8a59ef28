"""HTTP through a real uvicorn serving this project's app: 64 keep-alive connections, each
on its own session, doing POST /sessions/{id} (the whole conversation plus one message)
and GET /sessions/{id} for a fixed time. The load generator runs in this process and
shares the machine's cores with the server; the CPU each used is reported beside the
numbers, so a client-bound run shows as one."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.backends import REPO_ROOT
from benchmarks.config import Config
from benchmarks.data import appended, conversation
from benchmarks.stats import percentile
from benchmarks.workloads.httpclient import Connection, HTTPError

_HOST = "127.0.0.1"
_START_TIMEOUT = 60.0


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


async def _wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.perf_counter() + _START_TIMEOUT
    while time.perf_counter() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode} before serving")
        probe = Connection(_HOST, port)
        try:
            status, _ = await probe.request("GET", "/health/ready")
            if status == 200:
                return
        except HTTPError:
            pass
        finally:
            await probe.close()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"uvicorn not ready after {_START_TIMEOUT:.0f} s")


async def _drive(port: int, cfg: Config, prefix: str, server_pid: int) -> dict[str, Any]:
    n = cfg.http_connections
    connections = [Connection(_HOST, port) for _ in range(n)]
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
            status, reply = await connections[i].request(method, paths[i], body)
        except HTTPError as exc:
            errors.append(str(exc)[:200])
            return False
        latencies.append(time.perf_counter() - began)
        if status != 200:
            errors.append(f"{method} {status}: {reply[:200]!r}")
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
        if any(status != 200 for status, _ in seeded):
            raise RuntimeError(f"seeding failed: {[s for s, _ in seeded if s != 200][:3]}")
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
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
        "min_connection_ops": min(ops),
        "errors": len(errors),
        "first_errors": errors[:3],
        # CPU seconds per wall second (1.0 = one core busy): who the bottleneck is.
        "server_cpu_load": None
        if server_cpu is None or server_end is None
        else (server_end - server_cpu) / elapsed,
        "client_cpu_load": client_cpu / elapsed,
    }


@dataclass(frozen=True)
class Served:
    port: int
    pid: int
    log_tail: Callable[[], str]  # the server's latest output (its tracebacks)
    # The processes running the app: (pid,) with one worker, else uvicorn's children.
    worker_pids: tuple[int, ...] = ()
    log_text: Callable[[], str] = str  # the server's whole output so far


def worker_processes(pid: int) -> tuple[int, ...]:
    """The worker processes of the uvicorn supervisor `pid` (Linux): its children started
    by multiprocessing's spawn (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return tuple(sorted(found))


async def _wait_workers(workers: int, pid: int, log: Callable[[], bytes]) -> tuple[int, ...]:
    """Until each of `workers` processes has logged the end of its start-up (a worker
    accepts connections right after); their pids."""
    deadline = time.perf_counter() + _START_TIMEOUT
    while time.perf_counter() < deadline:
        pids = worker_processes(pid)
        if len(pids) == workers and log().count(b"Application startup complete.") >= workers:
            return pids
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not all {workers} uvicorn workers started in {_START_TIMEOUT:.0f} s")


@asynccontextmanager
async def serve(
    app: str, env: dict[str, str], what: str, *, workers: int = 1
) -> AsyncIterator[Served]:
    """Run `uvicorn <app>` (one worker, the flags every HTTP workload uses) on a free
    port with `env` added to this process's environment, once /health/ready answers
    200. A failure inside carries the server's output.

    `workers` > 1: uvicorn's `--workers`, logging at info level (lifecycle lines only;
    no access log) so that it is ready once every worker has finished its start-up."""
    port = _free_port()
    env = {**os.environ, **env}
    env.pop("AGENT_RUNTIME__API_KEY", None)  # an inherited key would make every request a 401
    command = [sys.executable, "-m", "uvicorn", app]
    level = "warning" if workers == 1 else "info"
    command += ["--host", _HOST, "--port", str(port), "--log-level", level, "--no-access-log"]
    if workers > 1:
        command += ["--workers", str(workers)]
    with tempfile.TemporaryFile() as server_log:

        def log() -> bytes:
            server_log.seek(0)
            return server_log.read()

        def log_tail() -> str:
            return log()[-2000:].decode(errors="replace")

        proc = await asyncio.create_subprocess_exec(
            *command, cwd=REPO_ROOT, env=env, stdout=server_log, stderr=server_log
        )
        try:
            await _wait_ready(port, proc)
            pids = (proc.pid,) if workers == 1 else await _wait_workers(workers, proc.pid, log)
            yield Served(port, proc.pid, log_tail, pids, lambda: log().decode(errors="replace"))
        except Exception as exc:
            tail = log_tail()
            raise RuntimeError(f"{what} failed: {exc}\nserver output:\n{tail}") from exc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def run(url: str, cfg: Config, prefix: str) -> dict[str, Any]:
    """Serve `url` (already migrated) with uvicorn on a free port and drive it."""
    env = {"AGENT_RUNTIME__DB_URL": url, "AGENT_RUNTIME__LOG_LEVEL": "warning"}
    async with serve("agent_runtime.main:app", env, "HTTP workload") as server:
        return await _drive(server.port, cfg, prefix, server.pid)
