"""Percentiles of latency samples (milliseconds)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: p99 is only reported from this many samples on (below, it is just the maximum).
P99_MIN_SAMPLES = 100


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    p50: float
    p90: float
    #: None when there are too few samples for a meaningful p99.
    p99: float | None
    mean: float


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linearly interpolated between the closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Sequence[float]) -> Summary:
    """Raises ValueError when ``samples`` is empty."""
    return Summary(
        n=len(samples), p50=percentile(samples, 50), p90=percentile(samples, 90),
        p99=percentile(samples, 99) if len(samples) >= P99_MIN_SAMPLES else None,
        mean=statistics.fmean(samples))
