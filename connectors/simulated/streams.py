"""Fan-out of the simulated venue's events to stream subscribers, with stream fault injection.

Owns: subscriber queues. Order updates are queued without limit (never dropped unless a fault
says so); price ticks, klines and account updates keep only the newest `CONFLATE` items. Must
not: block the producer — publishing never awaits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from connectors.simulated.faults import Faults
from connectors.simulated.klines import KlineHistory
from mm.errors import StreamDisconnected

CONFLATE = 256
_DISCONNECT = object()
_CLOSE = object()


@dataclass(eq=False)
class _Sub:
    kind: str
    symbols: set[str]
    interval: str | None
    items: deque[Any]
    event: asyncio.Event = field(default_factory=asyncio.Event)
    held: Any = None  # an order update held back to be delivered after the next one
    delivered: int = 0

    def put(self, item: Any) -> None:
        self.items.append(item)
        self.event.set()


class Hub:
    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._subs: list[_Sub] = []

    def subscribe(
        self, kind: str, symbols: set[str], interval: str | None = None
    ) -> AsyncIterator[Any]:
        """Register now (nothing published after this call is missed), iterate later."""
        items: deque[Any] = deque() if kind == "order" else deque(maxlen=CONFLATE)
        sub = _Sub(kind, symbols, interval, items)
        self._subs.append(sub)
        return self._iterate(sub)

    async def _iterate(self, sub: _Sub) -> AsyncIterator[Any]:
        try:
            while True:
                while not sub.items:
                    sub.event.clear()
                    await sub.event.wait()
                item = sub.items.popleft()
                if item is _DISCONNECT:
                    raise StreamDisconnected(f"simulated {sub.kind} stream disconnected")
                if item is _CLOSE:
                    return
                yield item
        finally:
            if sub in self._subs:
                self._subs.remove(sub)

    def _targets(self, kind: str, symbol: str | None) -> list[_Sub]:
        return [
            s
            for s in self._subs
            if s.kind == kind and (symbol is None or not s.symbols or symbol in s.symbols)
        ]

    def _disconnect_due(self, sub: _Sub, op: str, fault: str | None) -> bool:
        limit = self._faults.config.disconnect_after_messages
        sub.delivered += 1
        return fault == "disconnect" or (limit > 0 and sub.delivered > limit)

    def _drop(self, sub: _Sub) -> None:
        sub.put(_DISCONNECT)
        self._subs.remove(sub)

    def order(self, report: Any) -> None:
        for sub in self._targets("order", report.symbol):
            fault = self._faults.stream_fault("order_update")
            if self._disconnect_due(sub, "order_update", fault):
                self._drop(sub)
                continue
            if fault == "drop":
                continue
            if fault == "reorder" and sub.held is None:
                sub.held = report
                continue
            sub.put(report)
            if fault == "duplicate":
                sub.put(report)
            if sub.held is not None and sub.held is not report:
                sub.put(sub.held)
                sub.held = None

    def tick(self, tick: Any) -> None:
        for sub in self._targets("price", tick.symbol):
            fault = self._faults.stream_fault("price_update")
            if self._disconnect_due(sub, "price_update", fault):
                self._drop(sub)
                continue
            sub.put(tick)
        for sub in self._targets("order", tick.symbol):
            if sub.held is not None:  # a held-back update is released by the next tick at latest
                sub.put(sub.held)
                sub.held = None

    def account(self, update: Any) -> None:
        for sub in self._targets("account", None):
            sub.put(update)

    def wants_klines(self, base: str) -> bool:
        return any(s.kind == "kline" and s.symbols & {base, base + "-PERP"} for s in self._subs)

    def klines(self, base: str, history: KlineHistory, perp_suffix: str) -> None:
        for sub in self._targets("kline", None):
            if sub.symbols & {base, base + perp_suffix}:
                candles = history.candles(sub.interval or "1m", limit=1)
                if candles:
                    sub.put(candles[-1])

    def close(self) -> None:
        for sub in list(self._subs):
            sub.put(_CLOSE)
        self._subs.clear()
