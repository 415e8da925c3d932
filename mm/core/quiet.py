"""QuietBox: the ticks that cannot change a symbol's decision, so nobody needs to wake it for them.

Owns: the promise a strategy makes after a decision that changed nothing — "for any tick whose
last price, ask and bid lie strictly inside these bounds, before `until_ms`, with my state as it
is now, I would decide nothing again" — and the one test of a tick against it (`holds`). The
connector uses it to hold such ticks back (conflated, delivered within its idle bound anyway).
Must not: do IO or know who sends it; a box is valid only for the state it was made from, so
whoever holds one drops it when that state may have changed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
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


Key = Callable[[Sequence[Decimal]], Hashable]


def widest_box(
    key: Key, point: Sequence[Decimal], thresholds: Sequence[Sequence[Decimal]], *, walk: bool
) -> list[Bounds] | None:
    """Open intervals around `point`, one per coordinate, where `key` equals key(point), for a
    `key` that is non-decreasing in every coordinate and constant between consecutive
    `thresholds` of each (listed around the point; nothing is assumed beyond the last one).

    Each coordinate moves outward across thresholds while the cell beyond keeps the key (the
    others held still) — with `walk` as far as that goes, else only into the point's own
    cell. Then the box's lowest and highest cells are checked together, which by monotonicity
    covers every point between them; if that fails after a walk, the own cells are tried. A
    point on a threshold is kept by a bound one step of the Decimal context beyond it
    (`next_minus`/`next_plus`): no venue price (a handful of significant digits; not ones near
    the 28 of the Decimal context, whose rounding in the key's own divisions could differ) lies
    in between. None when the listed thresholds do not surround the point, or nothing
    qualifies.
    """
    here = list(point)
    want = key(here)
    for steps in (None, 1) if walk else (1,):
        box: list[Bounds] = []
        lows, highs = list(here), list(here)
        for axis, edges in enumerate(thresholds):
            value = here[axis]
            below = sorted((t for t in edges if t < value), reverse=True)
            above = sorted(t for t in edges if t > value)
            if not below or not above:
                return None
            lo, lows[axis] = _walk(key, here, axis, below[:steps], want)
            hi, highs[axis] = _walk(key, here, axis, above[:steps], want)
            box.append(
                (
                    lo if lo != value else value.next_minus(),
                    hi if hi != value else value.next_plus(),
                )
            )
        if key(lows) == want and key(highs) == want:
            return box
    return None


def _walk(
    key: Key, point: list[Decimal], axis: int, edges: Sequence[Decimal], want: Hashable
) -> tuple[Decimal, Decimal]:
    """Along `axis` across `edges` (in walking order) while the next cell keeps the key: (the
    last edge passed, or the start; a point of the last cell passed, or the start)."""
    current = inside = point[axis]
    for edge in edges:
        probe = list(point)
        probe[axis] = (current + edge) / 2
        if key(probe) != want:
            break
        current, inside = edge, probe[axis]
    return current, inside
