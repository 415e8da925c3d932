"""QuietBox: the ticks that cannot change a symbol's decision, so nobody needs to wake it for them.

Owns: the promise a strategy makes after a decision that changed nothing — "for any tick whose
last price, ask and bid lie strictly inside these bounds, before `until_ms`, with my state as it
is now, I would decide nothing again" — and the one test of a tick against it (`holds`). The
connector uses it to hold such ticks back (conflated, delivered within its idle bound anyway).
Must not: do IO or know who sends it; a box is valid only for the state it was made from, so
whoever holds one drops it when that state may have changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mm.core.model import PriceTick

Bounds = tuple[Decimal, Decimal]
ANY: Bounds = (Decimal("-Infinity"), Decimal("Infinity"))  # the decision ignores this field


def _within(value: Decimal | None, bounds: Bounds | None) -> bool:
    if bounds is None:  # the decision saw no such field: a tick that has one is news
        return value is None
    if bounds == ANY:
        return True
    return value is not None and bounds[0] < value < bounds[1]


@dataclass(frozen=True, slots=True)
class QuietBox:
    """Open intervals for the last price, the ask and the bid (`None`: the tick must carry no
    ask/bid; `ANY`: the decision does not use it), valid before `until_ms`."""

    lo: Decimal
    hi: Decimal
    ask: Bounds | None
    bid: Bounds | None
    until_ms: int

    def holds(self, tick: PriceTick, now_ms: int) -> bool:
        """True when `tick` at `now_ms` cannot change the decision this box was made from."""
        return (
            now_ms < self.until_ms
            and self.lo < tick.price < self.hi
            and _within(tick.ask, self.ask)
            and _within(tick.bid, self.bid)
        )
