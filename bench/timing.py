"""Small timing helpers: a stopwatch, percentiles, and side-by-side (bracketed) ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

__all__ = ["bracketed_ratios", "percentile", "seconds", "summary"]


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def bracketed_ratios(measured: Sequence[float], reference: Sequence[float]) -> list[float]:
    """``measured[i] / mean(reference[i], reference[i + 1])``: each run against the reference
    runs just before and just after it, so a drifting machine load cancels out."""
    if len(reference) != len(measured) + 1:
        raise ValueError("need one more reference run than measured runs")
    return [m / ((reference[i] + reference[i + 1]) / 2) for i, m in enumerate(measured)]


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max, rounded for the JSON files."""
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}
