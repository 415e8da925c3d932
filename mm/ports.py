"""Ports: the interfaces the engine needs from the outside world (exchange, clock, alerts).

Owns: the contracts every adapter implements (one contract test suite per port). Must not: hold
behaviour or pick implementations — only `mm.cli` (the composition root) chooses concrete classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mm.core.model import (
    AccountUpdate,
    Balance,
    Candle,
    Fill,
    MarketRules,
    OrderReport,
    OrderRequest,
    Position,
    PriceTick,
)


class Exchange(Protocol):
    """One account on one venue. Errors raised are always from `mm.errors`.

    Every state-changing call is idempotent: `place_order` with a client id the venue has already
    seen raises `DuplicateOrder` and creates nothing; `cancel_order` of a finished order raises
    `OrderNotFound` or returns its final report.
    """

    name: str
    consistency_window_ms: int  # how long a new order may stay invisible to lookups

    async def describe(self) -> None:
        """Learn the facts the venue owns (`name`, `consistency_window_ms`) before anyone reads
        them: a no-op in process, one round trip for a venue behind a connector. Idempotent."""

    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """Rules for each symbol; unknown symbols raise `ConfigError`."""

    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Submit a limit order; returns the venue's report (OPEN, FILLED, ...)."""

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        """Submit several orders; each slot holds the report or the `mm.errors` error raised."""

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        """Cancel by client id; returns the final report (it may show fills)."""

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        """Cancel every open order on the symbol, including foreign ones (use with care)."""

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        """Look an order up by client id, open or finished; raises `OrderNotFound`."""

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        """All open orders on the symbol, ours and foreign."""

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        """Trades of this account on the symbol with `ts_ms >= since_ms`, oldest first."""

    async def fetch_balances(self) -> dict[str, Balance]: ...

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        """Linear perpetual positions (flat symbols map to qty 0)."""

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]: ...

    async def check_health(self) -> HealthReport: ...

    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        """Price ticks; raises `StreamDisconnected` when the stream breaks."""

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        """Updates of this account's orders; may drop, repeat or reorder under faults."""

    def stream_klines(self, symbol: str, interval: str) -> AsyncIterator[Candle]: ...

    def stream_account(self) -> AsyncIterator[AccountUpdate]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    detail: str = ""
    latency_ms: float = 0.0


class Clock(Protocol):
    """Time as the engine sees it: wall time live, candle time in a backtest."""

    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Alert:
    severity: str  # "info" | "warning" | "critical"
    title: str
    text: str
    key: str = ""  # de-duplication key; empty = the title


class AlertSink(Protocol):
    async def send(self, alert: Alert) -> None: ...
