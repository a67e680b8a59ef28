"""Timing summaries and the adaptive repetition rule shared by the workloads."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Milliseconds: median, p50 (= median), p99, mean, min, max, and the sample count."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "ops_per_s": len(ms) / (sum(ms) / 1000) if sum(ms) else None,
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
