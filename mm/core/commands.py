"""What the core asks the outside world to do. Commands are imperative values, compared with `==`.

Owns: the command vocabulary. Must not: carry behaviour — the engine journals and executes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mm.core.model import Role, Side


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place a limit order for slot `level`. `client_id` is deterministic (see `mm.core.ids`)."""

    symbol: str
    client_id: str
    level: int
    role: Role
    side: Side
    price: Decimal
    qty: Decimal
    post_only: bool
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel the live order of slot `level`; `reason` is a short machine-readable word."""

    symbol: str
    client_id: str
    level: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every live order of ours on `symbol` (never foreign orders)."""

    symbol: str
    reason: str


Command = PlaceOrder | CancelOrder | CancelAll
