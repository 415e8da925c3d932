"""Clocks: wall time for live trading, a manually advanced virtual clock for backtests and tests.

Owns: the two `mm.ports.Clock` implementations.
Must not: be read from `mm.core` (time is passed in).
"""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock:
    """Time moves only when told (`set`/`advance`) or when someone sleeps; sleeping never blocks."""

    def __init__(self, now_ms: int = 0) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def set(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)

    def advance(self, ms: int) -> None:
        self._now_ms += ms

    async def sleep(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)
        await asyncio.sleep(0)
