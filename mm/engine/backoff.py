"""Jittered exponential backoff shared by every retry loop of the engine and its drivers.

Owns: the delay formula. Must not: sleep (callers sleep on their own clock).
"""

from __future__ import annotations

import random


def jittered(bounds: tuple[float, float], attempt: int) -> float:
    """Delay before retry number `attempt` (from 1): low * 2^(attempt-1), capped at high, times a
    random factor in [0.5, 1) so that many retrying callers spread out."""
    low, high = bounds
    return min(high, low * 2 ** min(max(attempt, 1) - 1, 10)) * (0.5 + random.random() / 2)
