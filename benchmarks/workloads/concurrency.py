"""64 concurrent clients, each on its own session, appending a message then loading the
session, for a fixed time. All clients share the implementation's engine / connection,
as request handlers share them in one service process."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from benchmarks.base import Impl
from benchmarks.config import Config
from benchmarks.data import appended, conversation
from harness.latency import latency_ms


async def run_one(impl: Impl, cfg: Config, prefix: str) -> dict[str, Any]:
    sessions = [f"{prefix}-c{i}" for i in range(cfg.clients)]
    histories = [conversation(cfg.client_start) for _ in sessions]
    for session_id, messages in zip(sessions, histories, strict=True):
        await impl.seed(session_id, messages)
    gc.collect()

    latencies: list[float] = []
    ops = [0] * cfg.clients
    errors = [0] * cfg.clients
    first_errors: list[str] = []
    start = asyncio.Event()
    deadline = 0.0

    async def client(i: int) -> None:
        await start.wait()
        messages = histories[i]
        while time.perf_counter() < deadline:
            after = appended(messages)
            began = time.perf_counter()
            try:
                await impl.save(sessions[i], after)
                await impl.load(sessions[i])
            except Exception as exc:  # counted and reported; the client carries on
                errors[i] += 1
                if len(first_errors) < 3:
                    first_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append(time.perf_counter() - began)
            ops[i] += 1
            messages = after

    tasks = [asyncio.create_task(client(i)) for i in range(cfg.clients)]
    await asyncio.sleep(0)  # let every client reach start.wait()
    began = time.perf_counter()
    deadline = began + cfg.concurrency_seconds
    start.set()
    _, stragglers = await asyncio.wait(tasks, timeout=cfg.concurrency_seconds + cfg.grace_seconds)
    for task in stragglers:  # an operation stuck past the grace period does not count
        task.cancel()
    await asyncio.gather(*stragglers, return_exceptions=True)
    elapsed = time.perf_counter() - began

    total = sum(ops)
    return {
        "clients": cfg.clients,
        "seconds": elapsed,
        "ops": total,
        "ops_per_s": total / elapsed,
        **latency_ms(latencies, "p50", "p99", "max"),
        "min_client_ops": min(ops),
        "max_client_ops": max(ops),
        "errors": sum(errors),
        "cancelled_clients": len(stragglers),
        "first_errors": first_errors,
        "client_ops": ops,
    }


async def run(
    impls: list[Impl], cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for impl in impls:
        result = await run_one(impl, cfg, prefix)
        out[impl.name] = result
        p50, p99 = result["p50_ms"] or float("nan"), result["p99_ms"] or float("nan")
        log(
            f"{cfg.clients} clients {impl.name:<6} {result['ops_per_s']:8.1f} ops/s"
            f"  p50 {p50:.1f} ms  p99 {p99:.1f} ms  slowest client {result['min_client_ops']} ops"
            f"  errors {result['errors']}"
        )
    return out
