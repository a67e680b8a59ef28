"""Human in the loop: waits parked on real uvicorn servers, woken by decisions taken in
another process.

Two servers of this project's app on one freshly migrated database of the backend: the
*waiting* server, where `GET /approvals/{call_id}/wait` requests park, and a separate
*deciding* server (one worker) that takes every `POST /approvals` and
`POST /approvals/{call_id}/decision`. A decision therefore always reaches its waiter
across processes, through the event log: PostgreSQL LISTEN/NOTIFY, or on SQLite the
hub's poll of the events table every AGENT_RUNTIME__EVENT_POLL_SECONDS (0.1 s).

1. Decision-to-wake latency across workers: the waiting server runs 4 workers on
   PostgreSQL, 2 on SQLite. `hitl_waiters` pending approvals (fresh ids), one wait
   each (`?timeout=30`) on its own connection, the connections opened one after the
   other so that the workers take turns accepting them; parked = every connection
   accepted by a worker (read from /proc/net/tcp and the workers' file descriptors,
   which also says which worker holds which waiter) and the workers idle. Then the
   approvals are decided one at a time, from one connection: the next decision is sent
   once the previous one is answered and a random pause of 0-100 ms has passed (so that
   decisions do not fall in step with the hubs' polling); the waiters' answers are
   awaited concurrently. Latency: decision sent -> its waiter's answer arrived; p50,
   p99, max, and per worker.
2. Waiters per worker and memory per waiter: a fresh one-worker waiting server per
   size (PostgreSQL with AGENT_RUNTIME__DB_POOL_MAX_SIZE=5); with `--workers 1` uvicorn
   runs the app in its own process, whose VmRSS (/proc/<pid>/status) is read once
   warmed up (20 waits parked and decided) with no waiter, then with K parked waiters
   (`?timeout=60`); KiB per waiter = the difference / K. Then all K are decided (16
   decisions in flight) and every waiter must answer `approved`.

A waiter answering anything but its approval `approved` (an error, or `pending` after
100 re-asks) is a wrong answer: the run then exits 1. A wait that times out before its
decision (if parking and deciding take longer than its timeout) is asked again, as a
client would, and counted. The machine's load average is recorded: the servers, the
client and PostgreSQL share its cores, and so does anything else running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.backends import Databases, aerich_upgrade
from benchmarks.config import Config
from benchmarks.workloads.http import Checks, cpu_seconds, serve
from harness.latency import latency_ms
from harness.loadclient import Connection, Unanswered
from harness.ports import LOOPBACK
from harness.servers import LiveServer
from harness.workers import accepted_by

__all__ = ["TARGET_P99_MS", "WORKERS", "run"]

WORKERS = {"postgres": 4, "sqlite": 2}  # workers of the waiting server, phase 1
TARGET_P99_MS = {"postgres": 50.0, "sqlite": 500.0}  # decision-to-wake p99, phase 1
MEMORY_POOL_MAX = 5  # PostgreSQL pool of the one-worker server, phase 2

_APP = "agent_runtime.main:app"
_LATENCY_TIMEOUT = 30  # seconds, the wait's `timeout` in phase 1
_MEMORY_TIMEOUT = 60  # phase 2: the most the API allows (parking thousands takes a while)
_PAUSE_S = 0.1  # phase 1: pause between decisions, uniform in 0 .. this (the SQLite poll)
_OPEN_BATCH = 500  # connections opened at once (uvicorn's listen backlog is 2048)
_IN_FLIGHT = 16  # concurrent creates / decisions from the deciding side
_REQUEST_TIMEOUT = 60.0  # one create or decision; a hang is a failure
_PARK_LIMIT = 120.0  # waiting for the waiters to be accepted and the workers idle
_IDLE_WINDOW = 0.5  # seconds; idle = the workers used at most _IDLE_CPU of CPU in it
_IDLE_CPU = 0.03


def raise_nofile(needed: int) -> dict[str, Any]:
    """Raise this process's soft RLIMIT_NOFILE to `needed` (at most the hard limit); the
    servers started afterwards inherit it. What it was and is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"soft_before": soft, "soft": now, "hard": hard}


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def _ms(seconds: list[float]) -> dict[str, Any]:
    return {"n": len(seconds), **latency_ms(seconds, "p50", "p99", "max")}


@dataclass
class _Waiter:
    call_id: str
    conn: Connection
    decided_at: float | None = None  # when its decision was sent
    arrived: float | None = None  # when its answer (not pending) arrived
    status: str | None = None  # the approval's status in that answer
    error: str | None = None
    early: bool = False  # answered before its decision was sent
    reasks: int = 0  # waits that timed out (pending) before the decision, asked again
    worker: int | None = None  # the pid of the worker that accepted the connection
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, wait_s: int) -> None:
        path = f"/approvals/{self.call_id}/wait?timeout={wait_s}"
        try:
            while True:
                try:
                    response = await self.conn.request("GET", path)
                except Unanswered as exc:
                    self.error = str(exc)[:200]
                    return
                arrived = time.perf_counter()
                try:
                    approval = response.json() if response.status == 200 else None
                except ValueError:
                    approval = None
                if not isinstance(approval, dict) or approval.get("call_id") != self.call_id:
                    self.error = f"answered {response.status} {response.body[:120]!r}"
                    return
                if approval.get("status") == "pending" and self.reasks < 100:
                    # Its timeout passed first (before its decision, or as it was being
                    # committed): ask again, as a client would.
                    self.reasks += 1
                    continue
                if self.decided_at is None:
                    self.early = True
                self.arrived, self.status = arrived, str(approval.get("status"))
                return
        finally:
            self.done.set()


class _Decider:
    """The deciding server's side: creates and decides, a few requests in flight."""

    def __init__(self, served: LiveServer, session_id: str, checks: Checks) -> None:
        self.served, self.session_id, self.checks = served, session_id, checks
        self.conns = [Connection(LOOPBACK, served.port) for _ in range(_IN_FLIGHT)]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns), return_exceptions=True)

    async def _exchange(
        self, conn: Connection, method: str, path: str, body: Any
    ) -> tuple[int, bytes]:
        try:
            response = await asyncio.wait_for(conn.request(method, path, body), _REQUEST_TIMEOUT)
        except Unanswered:
            # Once more on a new connection: uvicorn closes keep-alive connections idle
            # for 5 s. Creates and decisions are idempotent.
            response = await asyncio.wait_for(conn.request(method, path, body), _REQUEST_TIMEOUT)
        return response.status, response.body

    async def create(self, call_ids: Sequence[str]) -> None:
        async def one(conn: Connection, call_id: str) -> None:
            body = {
                "session_id": self.session_id,
                "call_id": call_id,
                "tool_name": "delete_file",
                "arguments": {"path": f"/tmp/{call_id}.csv"},
            }
            status, reply = await self._exchange(conn, "POST", "/approvals", body)
            if status != 201:
                self.checks.fail(f"create {call_id}: answered {status} {reply[:120]!r}")

        await self._each(one, call_ids)

    async def decide(self, conn: Connection, waiter: _Waiter) -> float:
        """Approve `waiter`'s call; the decision's round trip in seconds. `decided_at`
        is set just before the request is sent."""
        body = {"status": "approved", "decided_by": "bench"}
        path = f"/approvals/{waiter.call_id}/decision"
        waiter.decided_at = time.perf_counter()
        status, reply = await self._exchange(conn, "POST", path, body)
        elapsed = time.perf_counter() - waiter.decided_at
        if status != 200:
            self.checks.fail(f"decide {waiter.call_id}: answered {status} {reply[:120]!r}")
        return elapsed

    async def decide_all(self, waiters: Sequence[_Waiter]) -> None:
        async def one(conn: Connection, waiter: _Waiter) -> None:
            await self.decide(conn, waiter)

        await self._each(one, waiters)

    async def _each(self, work: Callable[[Connection, Any], Any], items: Sequence[Any]) -> None:
        """`work(conn, item)` for every item in order, `_IN_FLIGHT` at a time."""
        queue = list(reversed(items))

        async def lane(conn: Connection) -> None:
            while queue:
                item = queue.pop()
                try:
                    await work(conn, item)
                except (Unanswered, TimeoutError) as exc:
                    name = getattr(item, "call_id", item)
                    self.checks.fail(f"{name}: {type(exc).__name__}: {exc}")

        await asyncio.gather(*(lane(c) for c in self.conns))


async def _park(
    served: LiveServer, call_ids: Sequence[str], wait_s: int, checks: Checks
) -> tuple[list[_Waiter], list[asyncio.Task[None]], dict[str, Any]]:
    """One wait per call on its own connection, opened `_OPEN_BATCH` at a time; returns
    once every connection is accepted by a worker and the workers are idle."""
    pids = served.worker_pids
    waiters = [_Waiter(call_id, Connection(LOOPBACK, served.port)) for call_id in call_ids]
    tasks: list[asyncio.Task[None]] = []
    began = time.perf_counter()
    deadline = began + _PARK_LIMIT
    held: dict[int, int] = {}

    def ports() -> set[int]:
        return {p for w in waiters if (p := w.conn.local_port) is not None}

    for start in range(0, len(waiters), _OPEN_BATCH):
        batch = waiters[start : start + _OPEN_BATCH]
        # Connected one after the other before any request is sent: the workers take
        # turns accepting. (Opened and sent at once, a burst of connections tends to be
        # accepted by whichever worker wakes first.)
        for waiter in batch:
            with contextlib.suppress(Unanswered):  # then the request fails, and says why
                await waiter.conn.connect()
        tasks += [asyncio.create_task(w.wait(wait_s)) for w in batch]
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            mine = ports()
            held = {p: pid for p, pid in accepted_by(served.port, pids).items() if p in mine}
            finished = sum(w.done.is_set() for w in waiters)
            if len(held) + finished >= len(tasks):
                break
    accepted_s = time.perf_counter() - began
    idle = False
    last = _cpu(pids)
    while time.perf_counter() < deadline:
        await asyncio.sleep(_IDLE_WINDOW)
        now = _cpu(pids)
        if now - last <= _IDLE_CPU:
            idle = True
            break
        last = now
    by_port = {w.conn.local_port: w for w in waiters}
    for port, pid in held.items():
        if port in by_port:
            by_port[port].worker = pid
    per_worker = {str(pid): sum(1 for w in waiters if w.worker == pid) for pid in pids}
    early = [w for w in waiters if w.done.is_set()]
    if early:
        first = early[0]
        checks.fail(
            f"{len(early)} of {len(waiters)} waits answered before any decision, e.g. "
            f"{first.call_id}: {first.error or first.status}"
        )
    parked = {
        "accepted": len(held),
        "accepted_s": accepted_s,
        "parked_s": time.perf_counter() - began,
        "workers_idle": idle,
        "per_worker": per_worker,
    }
    return waiters, tasks, parked


async def _finish(tasks: list[asyncio.Task[None]], waiters: list[_Waiter], limit: float) -> None:
    _, pending = await asyncio.wait(tasks, timeout=limit) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(w.conn.close() for w in waiters), return_exceptions=True)


def _woke(waiters: Sequence[_Waiter], checks: Checks, what: str) -> dict[str, Any]:
    woke = [w for w in waiters if w.status == "approved" and not w.early]
    wrong = [w for w in waiters if w not in woke]
    if wrong:
        w = wrong[0]
        got = w.error or (f"answered {w.status} before its decision" if w.early else w.status)
        checks.fail(
            f"{what}: {len(wrong)} of {len(waiters)} waiters did not answer approved, e.g. "
            f"{w.call_id}: {got or 'no answer'}"
        )
    return {
        "waiters": len(waiters),
        "woke": len(woke),
        "reasked_after_timeout": sum(w.reasks for w in waiters),
        "errors": sum(1 for w in waiters if w.error),
    }


async def _latency(
    waiting: LiveServer,
    decider: _Decider,
    n: int,
    tag: str,
    checks: Checks,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Park `n` waits, then decide them one at a time (the next decision is sent once the
    previous one is answered and a random pause of 0 to `_PAUSE_S` has passed, so that
    decisions do not fall in step with the hubs' polling); each waiter's answer is
    awaited concurrently. Latency: decision sent -> its waiter's answer arrived."""
    call_ids = [f"{tag}-{i}" for i in range(n)]
    await decider.create(call_ids)
    waiters, tasks, parked = await _park(waiting, call_ids, _LATENCY_TIMEOUT, checks)
    log(
        f"HITL {n} waits parked on {len(waiting.worker_pids)} workers in "
        f"{parked['parked_s']:.1f} s: {parked['per_worker']} (idle: {parked['workers_idle']})"
    )
    conn = decider.conns[0]
    pauses = random.Random(0)
    rtt: list[float] = []
    began = time.perf_counter()
    try:
        for waiter in waiters:
            if waiter.done.is_set():
                continue  # answered early: a wrong answer, counted below
            try:
                rtt.append(await decider.decide(conn, waiter))
            except (Unanswered, TimeoutError) as exc:
                checks.fail(f"decide {waiter.call_id}: {type(exc).__name__}: {exc}")
                continue
            await asyncio.sleep(pauses.uniform(0, _PAUSE_S))
        decided_s = time.perf_counter() - began
    finally:
        await _finish(tasks, waiters, _LATENCY_TIMEOUT + 10)
    answered = [
        w for w in waiters if w.status == "approved" and w.arrived and w.decided_at is not None
    ]
    per_worker = {
        str(pid): _ms([_wake(w) for w in answered if w.worker == pid])
        for pid in waiting.worker_pids
    }
    return {
        **_woke(waiters, checks, "wake latency"),
        **_ms([_wake(w) for w in answered]),
        "decision_round_trip": _ms(rtt),
        "pause_between_decisions_s": [0, _PAUSE_S],
        "decided_in_s": decided_s,
        "parked": parked,
        "per_worker": per_worker,
        "worker_unknown": sum(1 for w in waiters if w.worker is None),
    }


def _wake(waiter: _Waiter) -> float:
    assert waiter.arrived is not None and waiter.decided_at is not None
    return waiter.arrived - waiter.decided_at


async def _settle(pids: Sequence[int]) -> bool:
    deadline = time.perf_counter() + 30
    last = _cpu(pids)
    while time.perf_counter() < deadline:
        await asyncio.sleep(_IDLE_WINDOW)
        now = _cpu(pids)
        if now - last <= _IDLE_CPU:
            return True
        last = now
    return False


async def _memory(
    waiting: LiveServer,
    decider: _Decider,
    k: int,
    tag: str,
    checks: Checks,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """RSS of the one-worker server warmed up, then with `k` parked waiters; all decided."""
    (pid,) = waiting.worker_pids
    # Warm-up: every code path of a wait once (a few waits parked, decided, answered).
    warm_ids = [f"{tag}-warm-{i}" for i in range(20)]
    await decider.create(warm_ids)
    warm, warm_tasks, _ = await _park(waiting, warm_ids, _MEMORY_TIMEOUT, checks)
    await decider.decide_all(warm)
    await _finish(warm_tasks, warm, _MEMORY_TIMEOUT + 10)
    _woke(warm, checks, f"memory K={k} warm-up")
    call_ids = [f"{tag}-{i}" for i in range(k)]
    await decider.create(call_ids)
    await _settle([pid])
    before = rss_kib(pid)
    waiters, tasks, parked = await _park(waiting, call_ids, _MEMORY_TIMEOUT, checks)
    with_waiters = rss_kib(pid)
    began = time.perf_counter()
    try:
        await decider.decide_all(waiters)
        decided_s = time.perf_counter() - began
        # Each waiter's answer, at most the wait's timeout after its decision.
        _, pending = await asyncio.wait(tasks, timeout=_MEMORY_TIMEOUT + 10)
        woke_s = time.perf_counter() - began
    finally:
        await _finish(tasks, waiters, 10)
    await _settle([pid])
    after = rss_kib(pid)
    per_waiter = (
        (with_waiters - before) / k if before is not None and with_waiters is not None else None
    )
    out = {
        "k": k,
        **_woke(waiters, checks, f"memory K={k}"),
        "rss_before_kib": before,
        "rss_with_waiters_kib": with_waiters,
        "rss_after_kib": after,
        "kib_per_waiter": per_waiter,
        "parked": parked,
        "decide_all_s": decided_s,
        "all_answered_s": woke_s,
        "unanswered": len(pending),
    }
    log(
        f"HITL memory K={k}: RSS {before} -> {with_waiters} KiB "
        f"({per_waiter or 0:.1f} KiB/waiter), woke {out['woke']}/{k}, parked in "
        f"{parked['parked_s']:.1f} s, decided in {decided_s:.1f} s"
    )
    return out


async def run(
    dbs: Databases, cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    checks = Checks()
    backend = dbs.backend
    workers = WORKERS[backend]
    url = dbs.urls["hitl"]
    tag = f"{prefix}-hitl-{secrets.token_hex(3)}"  # fresh ids on every run
    largest = max([cfg.hitl_waiters, *cfg.hitl_memory_waiters])
    limits = raise_nofile(largest + 1024)  # this process and the servers it starts
    await aerich_upgrade(url)
    base_env = {"AGENT_RUNTIME__DB_URL": url, "AGENT_RUNTIME__LOG_LEVEL": "warning"}
    out: dict[str, Any] = {
        "backend": backend,
        "load_average_before": os.getloadavg(),
        "nofile": limits,
        "decisions_from": "a second uvicorn process (1 worker) on the same database",
    }
    async with serve(_APP, base_env, "HITL workload (deciding server)") as deciding:
        decider = _Decider(deciding, f"{prefix}-hitl", checks)
        try:
            async with serve(
                _APP, base_env, f"HITL workload ({workers} workers)", workers=workers
            ) as waiting:
                latency = await _latency(waiting, decider, cfg.hitl_waiters, tag, checks, log)
                if checks.problems:
                    out["server_log_tail"] = waiting.log_tail()
            out["latency"] = {
                "workers": workers,
                "wait_timeout_s": _LATENCY_TIMEOUT,
                "target_p99_ms": TARGET_P99_MS[backend],
                **latency,
            }
            log(
                f"HITL wake across processes, {workers} workers: p50 "
                f"{latency['p50_ms'] or 0:.1f} ms, p99 {latency['p99_ms'] or 0:.1f} ms, max "
                f"{latency['max_ms'] or 0:.1f} ms, woke {latency['woke']}/{latency['waiters']}"
            )
            memory_env = dict(base_env)
            if backend == "postgres":
                memory_env["AGENT_RUNTIME__DB_POOL_MAX_SIZE"] = str(MEMORY_POOL_MAX)
            memory = []
            for k in cfg.hitl_memory_waiters:
                what = f"HITL workload (memory, K={k})"
                async with serve(_APP, memory_env, what) as waiting:
                    memory.append(await _memory(waiting, decider, k, f"{tag}-m{k}", checks, log))
                    if checks.problems and "server_log_tail" not in out:
                        out["server_log_tail"] = waiting.log_tail()
            out["memory"] = {
                "workers": 1,
                "pool_max_size": MEMORY_POOL_MAX if backend == "postgres" else None,
                "wait_timeout_s": _MEMORY_TIMEOUT,
                "rss_of": "the uvicorn process (with --workers 1 it runs the app itself)",
                "runs": memory,
            }
        finally:
            await decider.close()
            with contextlib.suppress(Exception):
                if checks.problems and "server_log_tail" not in out:
                    out["server_log_tail"] = deciding.log_tail()
    out["load_average_after"] = os.getloadavg()
    out["problems"] = checks.problems
    return out
