"""The timing summary of the repeated-operation workloads and the adaptive repetition
rule they share (the median and percentiles themselves: harness/latency.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.latency import latency_ms

__all__ = ["Budget", "summarize"]


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Milliseconds: median, p99, mean, min, max; the sample count and the operations
    per second of timed work."""
    if not seconds:
        return {"n": 0}
    total = sum(seconds)
    return {
        "n": len(seconds),
        **latency_ms(seconds, "median", "p99", "mean", "min", "max"),
        "ops_per_s": len(seconds) / total if total else None,
    }


@dataclass
class Budget:
    """Repeat until at least `min_reps` samples and `seconds` of timed work (or four
    times that in wall time, preparation included), never more than `max_reps`:
    slow cases (legacy at N=10000) get a few samples, fast ones get many."""

    seconds: float
    min_reps: int
    max_reps: int

    def __post_init__(self) -> None:
        self.started = time.perf_counter()
        self.timed = 0.0
        self.reps = 0

    def add(self, seconds: float) -> None:
        self.timed += seconds
        self.reps += 1

    def done(self) -> bool:
        if self.reps >= self.max_reps:
            return True
        if self.reps < self.min_reps:
            return False
        wall = time.perf_counter() - self.started
        return self.timed >= self.seconds or wall >= 4 * self.seconds
