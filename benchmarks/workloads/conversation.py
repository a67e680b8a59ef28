"""Save of a growing conversation and load, at N existing messages.

Per (implementation, N): seed a session with N messages, time `load` on it, then time
saves that each append one message (the caller passes the whole list; the floor writes
one row). A session takes at most N/10 appends before a fresh one is seeded, so every
timed save sees between N and 1.1 N existing messages.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.base import Impl
from benchmarks.config import Config
from benchmarks.data import Message, appended, conversation
from benchmarks.stats import Budget, summarize


async def _loads(
    impl: Impl, session_id: str, expected: list[Message], cfg: Config
) -> dict[str, Any]:
    first = await impl.load(session_id)
    loaded = first["messages"] if first else None
    for _ in range(cfg.warmup - 1):
        await impl.load(session_id)
    samples: list[float] = []
    budget = Budget(cfg.load_seconds, cfg.min_reps, cfg.max_reps)
    while not budget.done():
        started = time.perf_counter()
        await impl.load(session_id)
        elapsed = time.perf_counter() - started
        samples.append(elapsed)
        budget.add(elapsed)
    return {
        **summarize(samples),
        # Legacy orders by a timestamp shared by the whole save: a mismatch there is its
        # ordering defect, not a benchmark error.
        "loads_back_as_saved": loaded == expected,
    }


async def _saves(impl: Impl, n: int, base_id: str, cfg: Config) -> dict[str, Any]:
    """Appends, starting on the session `base_id` (seeded with N messages)."""
    per_session = max(1, n // 10)
    session_id, messages = base_id, conversation(n)
    for _ in range(cfg.warmup):
        messages = appended(messages)
        await impl.save(session_id, messages)
    count = cfg.warmup
    samples: list[float] = []
    budget = Budget(cfg.save_seconds, cfg.min_reps, cfg.max_reps)
    sessions = 1
    while not budget.done():
        if count >= per_session:
            session_id, messages, count = f"{base_id}-{sessions}", conversation(n), 0
            await impl.seed(session_id, messages)
            sessions += 1
        after = appended(messages)
        started = time.perf_counter()
        await impl.save(session_id, after)
        elapsed = time.perf_counter() - started
        samples.append(elapsed)
        budget.add(elapsed)
        messages, count = after, count + 1
    return {**summarize(samples), "sessions": sessions}


async def run(
    impls: Sequence[Impl], cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """{"save": {impl: {N: summary}}, "load": {impl: {N: summary}}}"""
    out: dict[str, Any] = {"save": {}, "load": {}}
    for n in cfg.sizes:
        for impl in impls:
            gc.collect()
            session_id = f"{prefix}-n{n}"
            expected = conversation(n)
            await impl.seed(session_id, expected)
            load = await _loads(impl, session_id, expected, cfg)
            save = await _saves(impl, n, session_id, cfg)
            out["load"].setdefault(impl.name, {})[str(n)] = load
            out["save"].setdefault(impl.name, {})[str(n)] = save
            log(
                f"N={n:<5} {impl.name:<6} save {save['median_ms']:8.2f} ms (n={save['n']})"
                f"  load {load['median_ms']:8.2f} ms (n={load['n']})"
                + ("" if load["loads_back_as_saved"] else "  [loads back misordered]")
            )
    return out
