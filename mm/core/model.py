"""Value objects shared by every layer: sides, statuses, market rules, ticks, reports, balances.

Owns: immutable domain values with `Decimal` money. Must not: do IO, read clocks, round prices
(rounding lives in `mm.core.rounding`), or know about any venue's wire format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


class CoreInvariantError(RuntimeError):
    """A broken invariant inside the core: a bug, never an expected condition. Crash on it."""


class Side(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY (inventory grows), -1 for SELL."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Role(enum.Enum):
    """Why an order exists: OPEN adds inventory to its slot, CLOSE takes it back to zero."""

    OPEN = "OPEN"
    CLOSE = "CLOSE"


class MarketType(enum.Enum):
    SPOT = "SPOT"
    LINEAR = "LINEAR"  # USD(T)-margined perpetual


class OrderStatus(enum.Enum):
    INTENT = "INTENT"  # journaled, not yet known to the exchange
    UNKNOWN = "UNKNOWN"  # sent, outcome unknown (timeout); resolved by client id lookup
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def rank(self) -> int:
        """Lifecycle position; a report never moves an order to a lower rank."""
        return _RANK[self]


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)
_RANK = {
    OrderStatus.INTENT: 0,
    OrderStatus.UNKNOWN: 1,
    OrderStatus.OPEN: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELED: 4,
    OrderStatus.EXPIRED: 4,
    OrderStatus.REJECTED: 4,
}
LIVE_STATUSES = frozenset(
    {OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED}
)


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Trading rules of one market: prices are multiples of `tick_size`, qty of `lot_size`."""

    symbol: str
    base: str
    quote: str
    market_type: MarketType
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal = ZERO
    min_notional: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PriceTick:
    symbol: str
    price: Decimal
    ts_ms: int
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The exchange's view of one order. Fill fields are cumulative over the order's life.

    `avg_price` is the average price of `filled_qty`; `fee` is the cumulative fee in quote.
    """

    symbol: str
    client_id: str
    side: Side
    price: Decimal
    qty: Decimal
    status: OrderStatus
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    fee: Decimal = ZERO
    exchange_id: str = ""
    ts_ms: int = 0
    reason: str = ""
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade execution as the venue reports it (its own trade id)."""

    symbol: str
    trade_id: str
    client_id: str
    exchange_id: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    ts_ms: int
    is_maker: bool


@dataclass(frozen=True, slots=True)
class Candle:
    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Position:
    """A linear perpetual position; `qty` is signed (short < 0)."""

    symbol: str
    qty: Decimal
    entry_price: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A limit order as the exchange port receives it."""

    symbol: str
    client_id: str
    side: Side
    price: Decimal
    qty: Decimal
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """Balances and positions after a change on the account."""

    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]
    ts_ms: int
