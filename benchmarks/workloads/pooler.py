"""PostgreSQL directly vs through PgBouncer (transaction mode), over real HTTP.

This project's app under uvicorn, 1 and 2 instances (separate processes on separate
ports, 2 workers each), 64 and 256 concurrent clients. Directly: each worker's pool
(AGENT_RUNTIME__DB_POOL_MAX_SIZE, default 10) holds server connections. Through
PgBouncer: the same app with AGENT_RUNTIME__DB_POOLER=pgbouncer (no named prepared
statements) and AGENT_RUNTIME__DB_DIRECT_URL (LISTEN goes to PostgreSQL directly),
and PgBouncer's `default_pool_size` = 20 server connections for the database.

Each client owns a session (seeded with 10 messages and 2 pending approvals, before
the clock starts) and one keep-alive connection to one instance (clients alternate
over the instances). In a loop: append one message (every fifth round: save the whole
conversation, back to 10 messages), read the session back, list its pending
approvals. Bodies are built fresh for every request and every answer is decoded and
checked (message count, last message, two approvals); a wrong answer, an error or a
server log line about a prepared statement is a SANITY failure (exit 1).

A third mode in full runs, "nocache": directly, with the setting a deployment behind
PgBouncer needs (AGENT_RUNTIME__DB_POOLER=pgbouncer: asyncpg keeps no statement cache,
so every statement is prepared again, one more round trip): what that costs apart
from the pooler's hop.

Reported per (mode, instances, clients): requests per second, p50 / p99 latency of
all requests, and the PostgreSQL server connections used: the maximum of
`SELECT count(*) FROM pg_stat_activity WHERE datname = ...` sampled every 100 ms while
the clients run (it includes the one direct LISTEN connection of each worker). The
PgBouncer mode has its own database, so its idle server connections never count for
the direct modes. Runs alternate the modes.

PgBouncer: `--pgbouncer-url` (in front of the server of `--pg-url`), else a private
one started for the run (harness/pgbouncer.py; needs the pgbouncer binary), else the
workload is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from benchmarks.backends import Databases, aerich_upgrade
from benchmarks.config import Config
from benchmarks.data import conversation, message
from benchmarks.workloads.http import Checks, CpuWindow, finish_within, serve
from harness.latency import latency_ms
from harness.loadclient import Connection, Unanswered
from harness.pgbouncer import pgbouncer_for_run, prepared_statement_lines
from harness.ports import LOOPBACK
from harness.servers import LiveServer

__all__ = ["MODES", "WORKERS", "run"]

# "nocache" (full runs only, `Config.pooler_modes`): directly, but configured as behind
# PgBouncer (AGENT_RUNTIME__DB_POOLER=pgbouncer: no asyncpg statement cache), to tell
# the cost of the pooler's hop from the cost of re-preparing every statement.
MODES = ("direct", "nocache", "pgbouncer")
_DATABASE = {"direct": "direct", "nocache": "direct", "pgbouncer": "pgbouncer"}
WORKERS = 2  # per instance
BASE = 10  # messages a session holds after a whole-list save
APPROVALS = 2  # pending approvals per session
SAVE_EVERY = 5  # rounds: one whole-list save, four appends
SAMPLE_S = 0.1  # pg_stat_activity sampling period

_APP = "agent_runtime.main:app"


class _Client:
    """One simulated agent: its session, its connection, what it was answered."""

    def __init__(self, conn: Connection, session_id: str, checks: Checks) -> None:
        self.conn, self.session_id, self.checks = conn, session_id, checks
        self.path = f"/sessions/{session_id}"
        self.count = BASE  # messages the session holds
        self.latencies: list[float] = []
        self.errors: list[str] = []

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded answer; None (an error recorded) unless 200 with JSON."""
        began = time.perf_counter()
        try:
            response = await self.conn.request(method, path, body)
        except Unanswered as exc:
            self.errors.append(str(exc)[:200])
            return None
        self.latencies.append(time.perf_counter() - began)
        if response.status != 200:
            self.errors.append(f"{method} {path} -> {response.status}: {response.body[:200]!r}")
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            self.errors.append(f"{method} {path}: not JSON: {response.body[:100]!r}")
            return None

    async def seed(self) -> bool:
        """The session and its approvals, before the clock starts."""
        seeded = await self.conn.request("POST", self.path, conversation(BASE))
        if seeded.status != 200:
            self.checks.fail(f"seeding {self.session_id}: {seeded.status} {seeded.body[:200]!r}")
            return False
        for k in range(APPROVALS):
            body = {
                "session_id": self.session_id,
                "call_id": f"{self.session_id}-a{k}",
                "tool_name": "delete_file",
                "arguments": {"path": f"/tmp/{self.session_id}-{k}.csv"},
            }
            created = await self.conn.request("POST", "/approvals", body)
            if created.status != 201:
                self.checks.fail(
                    f"seeding {self.session_id}: approval {created.status} {created.body[:200]!r}"
                )
                return False
        return True

    async def wake(self) -> None:
        """Right before the clock starts: uvicorn closes a keep-alive connection idle for
        5 s, as the first ones are while the last clients seed; a closed one is reopened."""
        for _ in range(2):
            try:
                await self.conn.request("GET", "/health/live")
                return
            except Unanswered:
                continue

    async def round(self, n: int) -> None:
        # Write: a fresh list of fresh dicts, as a client sends it.
        if n % SAVE_EVERY == SAVE_EVERY - 1:
            written = await self._call("POST", self.path, conversation(BASE))
            count = BASE
        else:
            written = await self._call("POST", f"{self.path}/messages", [message(self.count)])
            count = self.count + 1
        if written is None:
            return
        self.count = count
        # Read it back.
        loaded = await self._call("GET", self.path)
        if loaded is not None:
            got = loaded.get("messages") if isinstance(loaded, dict) else None
            if (
                not isinstance(got, list)
                or len(got) != count
                or got[-1].get("content") != message(count - 1)["content"]
            ):
                self.checks.fail(
                    f"{self.session_id}: read back {len(got or [])} messages, expected {count}"
                )
        # List its pending approvals.
        listed = await self._call("GET", f"{self.path}/approvals")
        if listed is not None:
            items = listed.get("items") if isinstance(listed, dict) else None
            if not isinstance(items, list) or len(items) != APPROVALS:
                self.checks.fail(f"{self.session_id}: listed {items!r:.200}")


async def _connections(admin: asyncpg.Connection, database: str) -> int:
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
    )
    return int(count)


async def _drive(
    servers: list[LiveServer],
    clients_n: int,
    seconds: float,
    tag: str,
    admin: asyncpg.Connection,
    database: str,
    checks: Checks,
    grace: float,
    bouncer_pid: int | None,
) -> dict[str, Any]:
    conns = [Connection(LOOPBACK, servers[i % len(servers)].port) for i in range(clients_n)]
    clients = [_Client(c, f"{tag}-c{i}", checks) for i, c in enumerate(conns)]
    samples: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await _connections(admin, database))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_S)

    deadline = 0.0
    start = asyncio.Event()

    async def loop(client: _Client) -> None:
        await start.wait()
        n = 0
        while time.perf_counter() < deadline:
            await client.round(n)
            n += 1

    pids = [pid for s in servers for pid in s.worker_pids]
    try:
        # Seeding, in batches, also opens every connection before the clock starts.
        for first in range(0, clients_n, 64):
            seeded = await asyncio.gather(*(c.seed() for c in clients[first : first + 64]))
            if not all(seeded):
                raise RuntimeError(f"seeding failed: {checks.problems[:1]}")
        await asyncio.gather(*(c.wake() for c in clients))
        before = await _connections(admin, database)
        tasks = [asyncio.create_task(loop(c)) for c in clients]
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(0)
        cpu = CpuWindow(pids, bouncer_pid)
        began = time.perf_counter()
        deadline = began + seconds
        start.set()
        await finish_within(tasks, seconds + grace)
        elapsed = time.perf_counter() - began
        cpu_loads = cpu.loads(elapsed)
        stop.set()
        await sampler
    finally:
        stop.set()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    latencies = [x for c in clients for x in c.latencies]
    errors = [e for c in clients for e in c.errors]
    for error in errors[:5]:
        checks.fail(f"request failed: {error}")
    return {
        "clients": clients_n,
        "seconds": elapsed,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        **latency_ms(latencies, "p50", "p99"),
        "errors": len(errors),
        "server_connections_before": before,
        "server_connections_max": max(samples, default=None),
        "server_connections_samples": len(samples),
        **cpu_loads,
    }


async def run(
    dbs: Databases,
    cfg: Config,
    prefix: str,
    log: Callable[[str], None],
    *,
    admin_url: str,
    pgbouncer_url: str | None,
) -> dict[str, Any]:
    bouncer = await pgbouncer_for_run(admin_url, pgbouncer_url, log, "pooler")
    if isinstance(bouncer, str):
        log(f"pooler: skipped: {bouncer}")
        return {"skipped": bouncer, "problems": []}
    bouncer_pid = bouncer.pid  # CPU: the private one's
    load_before = os.getloadavg()
    checks = Checks()
    direct = {mode: dbs.urls[f"pooler_{_DATABASE[mode]}"] for mode in MODES}
    names = {mode: urlsplit(url).path.lstrip("/") for mode, url in direct.items()}
    runs: list[dict[str, Any]] = []
    admin: asyncpg.Connection | None = None
    try:
        admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        await asyncio.gather(*(aerich_upgrade(url) for url in set(direct.values())))
        for instances in cfg.pooler_instances:
            for mode in cfg.pooler_modes:
                # All three settings, whatever this process's environment says.
                env = {
                    "AGENT_RUNTIME__DB_URL": direct[mode],
                    "AGENT_RUNTIME__DB_POOLER": "none" if mode == "direct" else "pgbouncer",
                    "AGENT_RUNTIME__DB_DIRECT_URL": direct[mode],
                    "AGENT_RUNTIME__LOG_LEVEL": "warning",
                }
                if mode == "pgbouncer":
                    env["AGENT_RUNTIME__DB_URL"] = bouncer.url(names[mode])
                async with contextlib.AsyncExitStack() as stack:
                    servers = [
                        await stack.enter_async_context(
                            serve(_APP, env, f"pooler workload ({mode})", workers=WORKERS)
                        )
                        for _ in range(instances)
                    ]
                    for clients in cfg.pooler_clients:
                        tag = f"{prefix}-pool-{mode}{instances}-{clients}-{os.getpid()}"
                        result = await _drive(
                            servers,
                            clients,
                            cfg.pooler_seconds,
                            tag,
                            admin,
                            names[mode],
                            checks,
                            cfg.grace_seconds,
                            bouncer_pid if mode == "pgbouncer" else None,
                        )
                        result.update(mode=mode, instances=instances, workers=WORKERS)
                        runs.append(result)
                        log(
                            f"pooler {mode:<9} {instances} x {WORKERS} workers, {clients:>3} "
                            f"clients: {result['requests_per_s']:.0f} req/s, p50 "
                            f"{result['p50_ms'] or 0:.1f} ms, p99 {result['p99_ms'] or 0:.1f} "
                            f"ms, server connections max {result['server_connections_max']}, "
                            f"errors {result['errors']}"
                        )
                    for server in servers:
                        for line in prepared_statement_lines(server.output())[:3]:
                            checks.fail(f"{mode}: server log: {line}")
    finally:
        if admin is not None:
            await admin.close()
        await bouncer.stop()
    return {
        "workers_per_instance": WORKERS,
        "app_pool_max_size": "AGENT_RUNTIME__DB_POOL_MAX_SIZE default (10) per worker",
        "pgbouncer": bouncer.description,
        "load": f"per client: append 1 message (every {SAVE_EVERY}th round: save {BASE}), "
        f"GET the session, list its {APPROVALS} pending approvals",
        "runs": runs,
        # The servers, the clients, PgBouncer and PostgreSQL share the machine's cores.
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "problems": checks.problems,
    }
