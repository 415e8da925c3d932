"""ccxt's values as ours: numbers as exact Decimals, venue amounts in base units, statuses.

Owns: the small conversions every part of the ccxt adapter shares. Must not: call ccxt.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mm.core.model import ZERO, OrderStatus

ONE = Decimal(1)
STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def num(value: Any) -> Decimal:
    """A ccxt number (float, int, str or None) as a Decimal without binary noise."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def in_base(amount: Decimal, size: Decimal) -> Decimal:
    """A venue amount (contracts of `size` base) in base, exactly; without the trailing zeros a
    float contract size such as 1.0 x 0.0001 would add. Size 1 passes the amount through."""
    if size == ONE:
        return amount
    value = amount * size
    return value.quantize(ONE) if value == value.to_integral_value() else value.normalize()


def seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def updated_ms(order: dict[str, Any]) -> int:
    """When a ccxt order last changed (a fill, its end), in ms; 0 if it does not say."""
    return int(
        order.get("lastUpdateTimestamp")
        or order.get("lastTradeTimestamp")  # gate puts its update time here
        or order.get("timestamp")
        or 0
    )
