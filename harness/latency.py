"""Latency summaries: one definition of the median and the percentiles.

The median (also reported as p50) is `statistics.median`; every other percentile is
the nearest-rank one. `latency_ms` gives the figures a caller asks for, in
milliseconds, under the keys the reports use (`p50_ms`, `p99_ms`, ...).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

__all__ = ["FIGURES", "latency_ms", "median", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted, non-empty `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of non-empty `values` (the mean of the two middle ones if even)."""
    return statistics.median(values)


FIGURES: dict[str, Callable[[Sequence[float]], float]] = {
    "median": median,
    "p50": median,
    "p90": lambda values: percentile(values, 90),
    "p99": lambda values: percentile(values, 99),
    "mean": statistics.fmean,
    "min": min,
    "max": max,
}


def latency_ms(seconds: Sequence[float], *figures: str) -> dict[str, float | None]:
    """`{"<figure>_ms": milliseconds}` for each of `figures` (names of `FIGURES`), in
    that order, from durations in seconds; every value None when there is none."""
    unknown = [name for name in figures if name not in FIGURES]
    if unknown:
        raise ValueError(f"unknown latency figures {unknown}; known: {list(FIGURES)}")
    return {f"{name}_ms": FIGURES[name](seconds) * 1000 if seconds else None for name in figures}
