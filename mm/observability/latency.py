"""Latency samples kept where they are measured: fixed histogram buckets plus recent samples.

Owns: a small, picklable record of one latency (milliseconds) that can travel in a status dict
from an actor to the process that serves `/metrics` (which turns it into a Prometheus histogram)
and to benchmarks (which read percentiles of the recent samples). Must not: do IO.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0)


class LatencyStats:
    def __init__(self, recent: int = 10_000) -> None:
        self.counts = [0] * (len(BUCKETS_MS) + 1)  # last: above every bound (+Inf)
        self.count = 0
        self.sum_ms = 0.0
        self.recent: deque[float] = deque(maxlen=recent)

    def observe(self, ms: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_MS, ms)] += 1
        self.count += 1
        self.sum_ms += ms
        self.recent.append(ms)

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of the recent samples, None without samples."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)  # nearest rank: the smallest value with >= q below it
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def median(self) -> float | None:
        return self.percentile(0.5)

    def to_dict(self) -> dict[str, object]:
        """Cumulative buckets (upper bound in ms, the last "+Inf") as Prometheus wants them,
        plus p50/p99 of the recent samples; JSON-safe."""
        cumulative: list[tuple[float | str, int]] = []
        running = 0
        for bound, n in zip((*BUCKETS_MS, "+Inf"), self.counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return {
            "buckets": cumulative,
            "count": self.count,
            "sum_ms": self.sum_ms,
            "p50_ms": self.percentile(0.5),
            "p99_ms": self.percentile(0.99),
        }
