"""Approval save + list: record a new pending tool call, then list the session's pending
ones (what an agent loop does before asking a human). Each session gets four approvals,
then the next session is used; the table keeps growing, as it does in a service."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from benchmarks.base import Impl
from benchmarks.config import Config
from benchmarks.stats import Budget, summarize

PER_SESSION = 4


async def run_one(impl: Impl, cfg: Config, prefix: str) -> dict[str, Any]:
    samples: list[float] = []
    listed_own = True
    budget = Budget(cfg.approval_seconds, cfg.min_reps, cfg.max_reps)
    i = -cfg.warmup  # negative: untimed warm-up
    gc.collect()
    while i < 0 or not budget.done():
        session_id, call_id = f"{prefix}-a{i // PER_SESSION}", f"{prefix}-call{i}"
        began = time.perf_counter()
        await impl.save_approval(session_id, call_id, "delete_file", {"path": f"/tmp/f{i}.csv"})
        pending = await impl.pending_approvals(session_id)
        elapsed = time.perf_counter() - began
        listed_own = listed_own and bool(pending) and pending[-1]["call_id"] == call_id
        if i >= 0:
            samples.append(elapsed)
            budget.add(elapsed)
        i += 1
    return {**summarize(samples), "lists_the_new_approval": listed_own}


async def run(
    impls: list[Impl], cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for impl in impls:
        result = await run_one(impl, cfg, prefix)
        out[impl.name] = result
        log(
            f"approval save+list {impl.name:<6} {result['median_ms']:8.2f} ms"
            f"  ({result['ops_per_s']:.0f} ops/s, n={result['n']})"
        )
    return out
