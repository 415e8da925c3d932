"""Snap prices and quantities to a market's tick and lot; check minimum size rules.

Owns: every rounding decision in the system. Must not: be bypassed — no other module quantizes
money. All functions are pure and idempotent: snapping an already snapped value returns it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from mm.core.model import MarketRules

_MODES = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_UP}


def snap(value: Decimal, step: Decimal, mode: str = "nearest") -> Decimal:
    """Round `value` to a multiple of `step` ("down", "up" or "nearest", ties away from zero).

    The result carries the exponent of `step`, so `snap(Decimal("1.5"), Decimal("0.10"))` is `1.50`.
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    units = (value / step).to_integral_value(rounding=_MODES[mode])
    return (units * step).quantize(step)


def snap_price(price: Decimal, rules: MarketRules, mode: str = "nearest") -> Decimal:
    return snap(price, rules.tick_size, mode)


def snap_qty(qty: Decimal, rules: MarketRules) -> Decimal:
    """Quantities always round down: never send more than was asked for."""
    return snap(qty, rules.lot_size, "down")


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def size_problem(price: Decimal, qty: Decimal, rules: MarketRules) -> str | None:
    """Why an order of `qty` at `price` would be refused by the venue, or None if it is fine."""
    if qty <= 0:
        return "qty_not_positive"
    if qty < rules.min_qty:
        return "below_min_qty"
    if price * qty < rules.min_notional:
        return "below_min_notional"
    return None


def qty_for_notional(notional: Decimal, price: Decimal, rules: MarketRules) -> Decimal:
    """Base quantity worth `notional` quote at `price`, rounded down to the lot size."""
    return snap_qty(notional / price, rules)
