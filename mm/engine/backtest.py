"""Backtest driver: run a SymbolEngine over a price path on a virtual clock, no sleeping.

Owns: the order of events at each path point — the venue matches resting orders at the point,
then the engine receives the resulting order reports, then the tick — and a fast-forward that
skips points where nothing can happen: no resting order is reached and the strategy's quiet band
(`GridStrategy.quiet_band`) is not left. `naive=True` visits every point; both give identical
results (a test checks this). Must not: know which venue it drives beyond `SteppedVenue`.

Equity = realized PnL + inventory * price - cost of the inventory (entry value + fees carried),
evaluated at every candle close; max drawdown is measured on that series (float: display only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import numpy as np

from mm.core.model import ZERO, OrderReport, PriceTick
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import SymbolEngine

_FIRST_WINDOW = 64


class SteppedVenue(Protocol):
    def advance(self, symbol: str, ticks: int, ts_ms: int) -> list[OrderReport]: ...

    def thresholds(self, symbol: str) -> tuple[int | None, int | None]: ...


@dataclass(frozen=True)
class Summary:
    points: int
    candles: int
    events: int
    fills: int
    round_trips: int
    volume_quote: Decimal
    fees: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    final_inventory: Decimal
    max_inventory: Decimal
    max_drawdown: float
    last_price: Decimal


@dataclass
class BacktestResult:
    summary: Summary
    equity: np.ndarray  # per candle close
    event_index: list[int] = field(default_factory=list)


def _next_event(
    prices: np.ndarray, ts: np.ndarray, start: int, lo: int, hi: int, until_ms: int
) -> int:
    """First index >= start whose price is <= lo or >= hi, or whose time reaches until_ms."""
    n = len(prices)
    width = _FIRST_WINDOW
    while start < n:
        end = min(n, start + width)
        window = prices[start:end]
        hits = np.flatnonzero((window <= lo) | (window >= hi))
        if until_ms < ts[end - 1] + 1:
            timed = int(np.searchsorted(ts[start:end], until_ms))
            if hits.size == 0 or timed < hits[0]:
                return start + timed
        if hits.size:
            return start + int(hits[0])
        start = end
        width *= 2
    return n


class Backtest:
    def __init__(
        self,
        engine: SymbolEngine,
        venue: SteppedVenue,
        clock: VirtualClock,
        ts_ms: np.ndarray,
        prices: np.ndarray,
        candle_close: np.ndarray,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.clock = clock
        self.ts = ts_ms
        self.prices = prices
        self.candle_close = candle_close  # path index of each candle's close
        self._events: list[tuple[int, Decimal, Decimal, Decimal]] = []
        self._max_inventory = ZERO

    async def run(
        self, *, naive: bool = False, progress: Callable[[int], None] | None = None
    ) -> BacktestResult:
        engine, symbol = self.engine, self.engine.symbol
        assert engine.rules is not None
        tick_size = engine.rules.tick_size
        n, i, last_version = len(self.prices), 0, -1
        events: list[int] = []
        while i < n:
            ts, ticks = int(self.ts[i]), int(self.prices[i])
            self.clock.set(ts)
            price = ticks * tick_size
            tick = PriceTick(symbol, price, ts)
            reports = self.venue.advance(symbol, ticks, ts)
            if reports and engine.last_tick is not None:
                engine.note_price(tick)
            for report in reports:
                await engine.on_order_report(report)
            await engine.on_tick(tick)
            events.append(i)
            if engine.pm.version != last_version:
                last_version = engine.pm.version
                self._record(i)
            j = i + 1 if naive else self._skip_to(i + 1, price)
            if progress is not None:
                progress(j - i)
            i = j
        return BacktestResult(self._summary(len(events)), self._equity(), events)

    def _skip_to(self, start: int, price: Decimal) -> int:
        engine = self.engine
        if engine.strategy is None or engine.state.value != "QUOTING" or start >= len(self.prices):
            return start
        tick_size = engine.rules.tick_size  # type: ignore[union-attr]
        best_bid, best_ask = self.venue.thresholds(engine.symbol)
        lo_p, hi_p, until_ms = engine.strategy.quiet_band(
            engine.pm.snapshot(),
            price,
            risk_halted=engine.risk_halted,
            floor=best_bid * tick_size if best_bid is not None else ZERO,
            ceiling=best_ask * tick_size if best_ask is not None else None,
        )
        lo = math.floor(lo_p / tick_size)
        hi = math.ceil(hi_p / tick_size)
        if best_bid is not None:
            lo = max(lo, best_bid)
        if best_ask is not None:
            hi = min(hi, best_ask)
        return _next_event(self.prices, self.ts, start, lo, hi, until_ms)

    def _record(self, index: int) -> None:
        slots = self.engine.pm.snapshot().slots.values()
        inventory = sum((s.inventory_qty for s in slots), ZERO)
        cost = sum((s.inventory_qty * s.entry_price + s.open_fees for s in slots), ZERO)
        realized = self.engine.pm.totals.realized_pnl
        self._events.append((index, realized, inventory, cost))
        self._max_inventory = max(self._max_inventory, abs(inventory))

    def _equity(self) -> np.ndarray:
        if not self._events:
            return np.zeros(len(self.candle_close))
        idx = np.array([e[0] for e in self._events])
        realized = np.array([float(e[1]) for e in self._events])
        inventory = np.array([float(e[2]) for e in self._events])
        cost = np.array([float(e[3]) for e in self._events])
        tick = float(self.engine.rules.tick_size)  # type: ignore[union-attr]
        at = np.searchsorted(idx, self.candle_close, side="right") - 1
        valid = at >= 0
        at = np.maximum(at, 0)
        close = self.prices[self.candle_close] * tick
        return np.where(valid, realized[at] + inventory[at] * close - cost[at], 0.0)

    def _summary(self, events: int) -> Summary:
        engine = self.engine
        totals = engine.pm.totals
        last_price = int(self.prices[-1]) * engine.rules.tick_size  # type: ignore[union-attr]
        slots = engine.pm.snapshot().slots.values()
        unrealized = sum(
            ((last_price - s.entry_price) * s.inventory_qty - s.open_fees for s in slots), ZERO
        )
        equity = self._equity()
        peak = np.maximum.accumulate(equity) if len(equity) else equity
        drawdown = float(np.max(peak - equity)) if len(equity) else 0.0
        return Summary(
            points=len(self.prices),
            candles=len(self.candle_close),
            events=events,
            fills=totals.fill_count,
            round_trips=totals.round_trips,
            volume_quote=totals.volume_quote,
            fees=totals.fees,
            realized_pnl=totals.realized_pnl,
            unrealized_pnl=unrealized,
            final_inventory=engine.pm.inventory_qty(),
            max_inventory=self._max_inventory,
            max_drawdown=max(drawdown, 0.0),
            last_price=last_price,
        )
