"""Candles built from the simulated price stream, kept at one minute and aggregated on request.

Owns: kline history of the live simulation. Must not: match orders.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from mm.core.model import Candle
from mm.errors import InvalidOrder

MINUTE_MS = 60_000
_UNITS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 24 * 60 * MINUTE_MS}


def interval_ms(interval: str) -> int:
    """'1m', '5m', '1h', '1d' ... in milliseconds (whole minutes only)."""
    unit = _UNITS.get(interval[-1:])
    if unit is None or not interval[:-1].isdigit() or int(interval[:-1]) < 1:
        raise InvalidOrder(f"kline interval {interval!r} must look like 1m, 15m, 1h or 1d")
    return int(interval[:-1]) * unit


class KlineHistory:
    def __init__(self, maxlen: int = 5000) -> None:
        self._candles: deque[Candle] = deque(maxlen=maxlen)

    def add(self, ts_ms: int, price: Decimal) -> None:
        start = ts_ms - ts_ms % MINUTE_MS
        last = self._candles[-1] if self._candles else None
        if last is not None and last.ts_ms == start:
            self._candles[-1] = Candle(
                start, last.open, max(last.high, price), min(last.low, price), price, last.volume
            )
        elif last is None or start > last.ts_ms:
            self._candles.append(Candle(start, price, price, price, price))

    def candles(self, interval: str, since_ms: int | None = None, limit: int = 500) -> list[Candle]:
        size = interval_ms(interval)
        out: list[Candle] = []
        for c in self._candles:
            start = c.ts_ms - c.ts_ms % size
            if out and out[-1].ts_ms == start:
                prev = out[-1]
                out[-1] = Candle(
                    start,
                    prev.open,
                    max(prev.high, c.high),
                    min(prev.low, c.low),
                    c.close,
                    prev.volume + c.volume,
                )
            else:
                out.append(Candle(start, c.open, c.high, c.low, c.close, c.volume))
        if since_ms is not None:
            out = [c for c in out if c.ts_ms >= since_ms]
        return out[-limit:]
