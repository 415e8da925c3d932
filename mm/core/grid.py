"""GridStrategy: (position snapshot, price, risk state) -> commands, for Long and Neutral grids.

Owns: which orders should rest where (DESIGN 3.1). Must not: mutate the position, do IO, or read a
clock — `now_ms` arrives as an argument. The same inputs always yield the same commands.

The lattice is `price(k) = anchor + k * interval`. The centre is the level nearest the reference
price (last price, shifted down by `inventory_skew_bps` per quote unit of inventory held at cost,
up for a short). The window is [centre - buy_levels, centre + sell_levels]:
- new opening buys go to levels below the centre, opening sells (Neutral) above it, never closer
  than `min_gap` intervals to the reference and never crossing the last price/book;
- trailing cancels an opening order only when it is more than `TRAIL_SLACK` levels beyond the
  far edge of the window (no churn when the price hovers at a half-level boundary); one the
  price moves towards stays until it fills (otherwise a grid would flee from every fill);
- a slot holding inventory gets one closing order for exactly the held qty, one level towards
  profit (k+1 for a long slot, k-1 for a short one);
- when more orders are wanted than `max_open_orders`, priority goes to closes inside the window,
  then opening orders nearest the centre, then closes outside the window, nearest first.

A decision depends on the price only through its key — (centre, first eligible buy level, first
eligible sell level) — and otherwise on the snapshot, the risk flag and the reject-backoff
horizon. Keys that yielded no commands are remembered for the current snapshot version, so a tick
that changes nothing costs one key computation (the hot path), and `quiet_band` can tell a
backtest which prices need no visit at all.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from mm.core import ids
from mm.core.commands import CancelOrder, Command, PlaceOrder
from mm.core.model import ZERO, MarketRules, MarketType, OrderStatus, PriceTick, Role, Side
from mm.core.position import PositionSnapshot, Slot, SlotOrder
from mm.core.quiet import ANY, Bounds, QuietBox, widest_box
from mm.core.rounding import is_multiple, qty_for_notional, size_problem

_ONE = Decimal(1)
_HALF = Decimal("0.5")
_BPS = Decimal(10_000)
_MAX_SKEW = Decimal("0.5")
_NEVER = 2**63
_EDGE = Decimal("1e-20")  # relative margin kept from a bound computed by division
BAND_LEVELS = 3  # how far (in levels) quiet_band looks for edges on each side
TRAIL_SLACK = 1  # levels beyond the far edge an opening order may lag before it is cancelled


class GridMode(enum.Enum):
    LONG = "long"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class GridParams:
    """Validated grid parameters (built from `mm.config`); see DESIGN 3.1 for their meaning."""

    strategy_id: str
    mode: GridMode
    interval: Decimal
    buy_levels: int
    sell_levels: int
    max_open_orders: int
    level_notional: Decimal | None = None
    level_qty: Decimal | None = None
    min_gap: Decimal = Decimal("0.1")
    inventory_skew_bps: Decimal = ZERO
    post_only: bool = True

    def __post_init__(self) -> None:
        ids.check_strategy_id(self.strategy_id)
        if (self.level_notional is None) == (self.level_qty is None):
            raise ValueError("set exactly one of level_notional and level_qty")
        if self.interval <= 0 or self.buy_levels < 1 or self.sell_levels < 0:
            raise ValueError("interval must be > 0, buy_levels >= 1, sell_levels >= 0")
        if not ZERO <= self.min_gap < _ONE:
            raise ValueError(f"min_gap must be in [0, 1) intervals, got {self.min_gap}")
        openings = self.buy_levels + (self.sell_levels if self.mode is GridMode.NEUTRAL else 0)
        if self.max_open_orders < openings:
            raise ValueError(
                f"max_open_orders ({self.max_open_orders}) must be at least the number of "
                f"opening levels ({openings})"
            )


# (priority class, distance from centre, level, role, side, price, qty); classes: 0 = close
# inside the window, 1 = opening, 2 = close outside the window.
_Want = tuple[int, int, int, Role, Side, Decimal, Decimal]
_UNACKNOWLEDGED = frozenset({OrderStatus.INTENT, OrderStatus.UNKNOWN})
# cancels after which the freed slot may want another order (a replacement, or a dust top-up)
_REPLACING = frozenset({"role_changed", "resize", "not_closable"})


class GridStrategy:
    def __init__(self, params: GridParams, rules: MarketRules, anchor: Decimal) -> None:
        if not is_multiple(params.interval, rules.tick_size):
            raise ValueError(
                f"interval {params.interval} is not a multiple of tick size {rules.tick_size}"
            )
        if not is_multiple(anchor, rules.tick_size) or anchor <= 0:
            raise ValueError(f"anchor {anchor} must be a positive multiple of {rules.tick_size}")
        self.params = params
        self.rules = rules
        self.anchor = anchor
        self.symbol = rules.symbol
        self._neutral = params.mode is GridMode.NEUTRAL
        self._gap = params.min_gap * params.interval
        self._quiet: set[tuple[bool, int, int, int]] = set()  # keys known to yield no commands
        self._quiet_version = -1
        self._box_cache: dict[tuple[object, ...], QuietBox] = {}  # quiet_box walks, this version
        self._last_key: tuple[bool, int, int, int] | None = None
        self._complete = False
        self._valid_until_ms = _NEVER
        self._prices: dict[int, Decimal] = {}
        self._sizes: dict[int, Decimal | None] = {}
        self._edge_cache: dict[tuple[int, Decimal], list[Decimal]] = {}
        self._close_cache: dict[int, tuple[Slot, tuple[int, Side, Decimal, Decimal] | None]] = {}
        self._held: tuple[int, Decimal] = (-1, ZERO)

    # -- lattice -----------------------------------------------------------------------------
    def level_price(self, level: int) -> Decimal:
        price = self._prices.get(level)
        if price is None:
            price = self._prices[level] = self.anchor + level * self.params.interval
        return price

    def nearest_level(self, price: Decimal) -> int:
        """Index of the level nearest `price`; a price exactly between two levels goes up."""
        offset = (price - self.anchor) / self.params.interval + _HALF
        return int(offset.to_integral_value(ROUND_FLOOR))

    def reference_price(self, price: Decimal, snapshot: PositionSnapshot) -> Decimal:
        bps = self.params.inventory_skew_bps
        if not bps:
            return price
        if self._held[0] != snapshot.version:
            cost = sum((s.inventory_qty * s.entry_price for s in snapshot.slots.values()), ZERO)
            self._held = (snapshot.version, cost)
        held = self._held[1]
        shift = max(-_MAX_SKEW, min(_MAX_SKEW, bps * held / _BPS))
        return price * (_ONE - shift)

    # -- decision ----------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget every remembered decision."""
        self._quiet.clear()
        self._box_cache.clear()

    def _key(
        self, snapshot: PositionSnapshot, price: Decimal, bid: Decimal | None, ask: Decimal | None
    ) -> tuple[int, int, int]:
        """(centre, first eligible buy level, first eligible sell level): all a decision needs
        from the price."""
        ref = self.reference_price(price, snapshot)
        centre = self.nearest_level(ref)
        buy_cap = (ask if ask is not None else price) - self.rules.tick_size
        first_buy, last_buy = centre - 1, centre - self.params.buy_levels
        while first_buy >= last_buy and not self._buy_ok(first_buy, ref, buy_cap):
            first_buy -= 1
        first_sell = centre + 1
        if self._neutral:
            sell_floor = (bid if bid is not None else price) + self.rules.tick_size
            last_sell = centre + self.params.sell_levels
            while first_sell <= last_sell and not self._sell_ok(first_sell, ref, sell_floor):
                first_sell += 1
        return centre, first_buy, first_sell

    def _remembering(self, snapshot: PositionSnapshot, now_ms: int) -> None:
        """Keep remembered quiet keys only while the snapshot and the backoff horizon hold."""
        if snapshot.version != self._quiet_version or now_ms >= self._valid_until_ms:
            self._quiet.clear()
            self._box_cache.clear()
            self._quiet_version = snapshot.version
            self._valid_until_ms = _NEVER

    def decide(
        self,
        snapshot: PositionSnapshot,
        price: Decimal,
        *,
        now_ms: int,
        risk_halted: bool = False,
        bid: Decimal | None = None,
        ask: Decimal | None = None,
    ) -> list[Command]:
        """Commands that move the live orders towards the desired grid. Pure and deterministic."""
        self._remembering(snapshot, now_ms)
        key = (risk_halted, *self._key(snapshot, price, bid, ask))
        self._last_key = key
        if key in self._quiet:
            return []
        commands = self._compute(snapshot, key, now_ms)
        if not commands:
            self._quiet.add(key)
        return commands

    def settled(self, snapshot: PositionSnapshot, now_ms: int) -> None:
        """The commands of the last decision all had their nominal outcome (places OPEN and
        unfilled, cancels CANCELED with no new fill): remember the new snapshot as quiet at the
        same key instead of recomputing. Valid only when that decision was complete — nothing
        held back by the order budget and no cancel that frees a slot for a replacement — since
        then the wanted orders are unchanged and every one of them is live.
        """
        if self._complete and self._last_key is not None:
            horizon = self._valid_until_ms  # back-offs seen by that decision still apply
            self._remembering(snapshot, now_ms)
            self._valid_until_ms = min(self._valid_until_ms, horizon)
            self._quiet.add(self._last_key)

    def _compute(
        self, snapshot: PositionSnapshot, key: tuple[bool, int, int, int], now_ms: int
    ) -> list[Command]:
        risk_halted, centre, first_buy, first_sell = key
        wants = self._wants(snapshot, centre, first_buy, first_sell, now_ms, risk_halted)
        self._complete = False
        return self._diff(snapshot, wants, risk_halted)

    def quiet_band(
        self,
        snapshot: PositionSnapshot,
        price: Decimal,
        *,
        risk_halted: bool = False,
        floor: Decimal = ZERO,
        ceiling: Decimal | None = None,
    ) -> tuple[Decimal, Decimal, int]:
        """(lo, hi, valid_until_ms): for every last price strictly between lo and hi, with this
        snapshot, no book (bid/ask) and a clock before valid_until_ms, `decide` returns [] — as
        far as decisions already made show (nothing is computed speculatively). The walk stops
        at `floor`/`ceiling` (where something else happens anyway, e.g. a resting order fills).
        A backtest uses it to skip path points where nothing can happen.
        """
        if snapshot.version != self._quiet_version:
            return price, price, self._valid_until_ms
        quiet = self._quiet

        def is_quiet(p: Decimal) -> bool:
            return p > 0 and (risk_halted, *self._key(snapshot, p, None, None)) in quiet

        if not is_quiet(price):
            return price, price, self._valid_until_ms
        edges = self._edges(snapshot, price)
        above = [e for e in edges if price < e and (ceiling is None or e <= ceiling)]
        below = [e for e in reversed(edges) if floor <= e < price]
        lo = self._walk(price, below, floor if floor > 0 else None, is_quiet)
        hi = self._walk(price, above, ceiling, is_quiet)
        return lo, hi, self._valid_until_ms

    def quiet_box(
        self,
        snapshot: PositionSnapshot,
        price: Decimal,
        *,
        now_ms: int,
        risk_halted: bool = False,
        bid: Decimal | None = None,
        ask: Decimal | None = None,
    ) -> QuietBox | None:
        """The ticks for which `decide` would return [] again, with this snapshot and risk flag,
        given that the decision at (price, bid, ask) returned [] (None when it did not, or is
        not remembered): a box around the tick where the decision key stays the same.

        The key is non-decreasing in the last price (through the reference price and, without
        a book, the buy cap and sell floor), in the ask (buy cap = ask - tick) and in the bid
        (Neutral sell floor = bid + tick), and changes only at thresholds: the reference
        price's half-levels and gap edges, and the level prices for cap and floor. So the box
        is found by walking across thresholds while the key holds (`widest_box`). Cached per
        key while the snapshot holds: the walk costs a few dozen key computations.
        """
        if snapshot.version != self._quiet_version or now_ms >= self._valid_until_ms:
            return None
        key = (risk_halted, *self._key(snapshot, price, bid, ask))
        if key not in self._quiet:
            return None
        factor = self.reference_price(_ONE, snapshot)  # ref = price * factor
        cache_key = (key, ask is None, bid is None, factor)
        cached = self._box_cache.get(cache_key)
        tick = PriceTick(self.symbol, price, 0, bid, ask)
        if cached is not None and cached.holds(tick, -1):
            return replace(cached, until_ms=self._valid_until_ms)
        box = self._widest_box(snapshot, price, bid, ask, factor)
        if box is not None:
            if len(self._box_cache) > 1_000:
                self._box_cache.clear()
            self._box_cache[cache_key] = box
            box = replace(box, until_ms=self._valid_until_ms)
        return box

    def _widest_box(
        self,
        snapshot: PositionSnapshot,
        price: Decimal,
        bid: Decimal | None,
        ask: Decimal | None,
        factor: Decimal,
    ) -> QuietBox | None:
        interval, anchor, tick = self.params.interval, self.anchor, self.rules.tick_size
        reach = BAND_LEVELS + 1

        def levels(value: Decimal, shift: Decimal) -> list[Decimal]:
            k = int(((value - anchor) / interval).to_integral_value(ROUND_FLOOR))
            return [anchor + j * interval + shift for j in range(k - reach, k + reach + 1)]

        offsets = {interval / 2, self._gap % interval}
        if self._neutral:
            offsets.add((interval - self._gap) % interval)
        prices = [t / factor for o in offsets for t in levels(price * factor, o)]
        point, edges = [price], [prices]
        if ask is None:
            prices += levels(price, tick)  # the buy cap comes from the price
        else:
            point.append(ask)
            edges.append(levels(ask, tick))
        if self._neutral and bid is None:
            prices += levels(price, -tick)  # and so does the sell floor
        elif self._neutral:
            point.append(bid)
            edges.append(levels(bid, -tick))

        def key_at(at: Sequence[Decimal]) -> tuple[int, int, int]:
            p = at[0]
            a = at[1] if ask is not None else None
            b = at[-1] if self._neutral and bid is not None else None
            return self._key(snapshot, p, b, a)

        cells = widest_box(key_at, point, edges, walk=True)
        if cells is None:
            return None
        lo, hi = cells[0]
        if factor != _ONE:  # keep clear of rounding at the edges of a divided bound
            lo, hi = lo * (_ONE + _EDGE), hi * (_ONE - _EDGE)
        ask_box = cells[1] if ask is not None else None
        bid_box: Bounds | None = ANY
        if self._neutral:
            bid_box = cells[-1] if bid is not None else None
        return QuietBox(lo, hi, ask_box, bid_box, _NEVER)

    @staticmethod
    def _walk(
        price: Decimal,
        edges: list[Decimal],
        bound: Decimal | None,
        is_quiet: Callable[[Decimal], bool],
    ) -> Decimal:
        """Move from `price` across edges while the open interval and the edge itself are quiet;
        past the last edge, on to `bound` (no edge lies in between, so one probe decides)."""
        current = price
        for edge in edges:
            if not is_quiet((current + edge) / 2):
                return current
            if not is_quiet(edge):
                return edge
            current = edge
        if bound is not None and bound != current and is_quiet((current + bound) / 2):
            return bound
        return current

    def _edges(self, snapshot: PositionSnapshot, price: Decimal) -> list[Decimal]:
        """Prices near `price` where the decision key can change, sorted. A level's gap or tick
        edge only counts where that level is a candidate (inside the buy or sell range of the
        centre there); the centre boundaries always count. Cached per centre and skew factor."""
        factor = self.reference_price(_ONE, snapshot)  # ref = price * factor
        centre = self.nearest_level(price * factor)
        cache_key = (centre, factor)
        edges = self._edge_cache.get(cache_key)
        if edges is not None:
            return edges
        interval, tick = self.params.interval, self.rules.tick_size
        found = set()
        for level in range(centre - BAND_LEVELS, centre + BAND_LEVELS + 1):
            p = self.level_price(level)
            found.add((p - interval / 2) / factor)
            candidates = [((p + self._gap) / factor, p + tick)]  # buy_ok edges of this level
            if self._neutral:
                candidates.append(((p - self._gap) / factor, p - tick))
            for edge in (e for pair in candidates for e in pair):
                here = self.nearest_level(edge * factor)
                is_buy = level < here and level >= here - self.params.buy_levels
                is_sell = self._neutral and here < level <= here + self.params.sell_levels
                if is_buy or is_sell:
                    found.add(edge)
        edges = sorted(found)
        if len(self._edge_cache) > 10_000:
            self._edge_cache.clear()
        self._edge_cache[cache_key] = edges
        return edges

    def _buy_ok(self, level: int, ref: Decimal, cap: Decimal) -> bool:
        p = self.level_price(level)
        return p + self._gap <= ref and p <= cap and p > 0

    def _sell_ok(self, level: int, ref: Decimal, floor: Decimal) -> bool:
        p = self.level_price(level)
        return p - self._gap >= ref and p >= floor

    def _opening_qty(self, level: int) -> Decimal | None:
        """Order size at a level, or None when the venue would refuse it (min qty/notional)."""
        if level in self._sizes:
            return self._sizes[level]
        p, price = self.params, self.level_price(level)
        qty = (
            p.level_qty
            if p.level_qty is not None
            else qty_for_notional(
                p.level_notional,
                price,
                self.rules,  # type: ignore[arg-type]
            )
        )
        self._sizes[level] = None if size_problem(price, qty, self.rules) else qty
        return self._sizes[level]

    def _close_of(self, slot: Slot) -> tuple[int, Side, Decimal, Decimal] | None:
        """(target level, side, price, qty) of the slot's closing order, or None when it holds
        nothing closable. Cached per slot object: slots are immutable values."""
        cached = self._close_cache.get(id(slot))
        if cached is not None and cached[0] is slot:
            return cached[1]
        inventory = slot.inventory_qty
        close = None
        if inventory:
            target = slot.level + 1 if inventory > 0 else slot.level - 1
            price, qty = self.level_price(target), abs(inventory)
            if size_problem(price, qty, self.rules) is None:
                close = (target, Side.SELL if inventory > 0 else Side.BUY, price, qty)
        if len(self._close_cache) > 50_000:
            self._close_cache.clear()
        self._close_cache[id(slot)] = (slot, close)
        return close

    def _closable(self, slot: Slot) -> bool:
        return self._close_of(slot) is not None

    def _wants(
        self,
        snapshot: PositionSnapshot,
        centre: int,
        first_buy: int,
        first_sell: int,
        now_ms: int,
        risk_halted: bool,
    ) -> dict[int, _Want]:
        """Desired order per slot: (priority class, distance, level, role, side, price, qty)."""
        lo, hi = centre - self.params.buy_levels, centre + self.params.sell_levels
        wants: dict[int, _Want] = {}
        slots = snapshot.slots
        resting: list[tuple[int, SlotOrder]] = []
        close_role = Role.CLOSE
        for level, slot in slots.items():
            order = slot.order
            if order is not None and order.role is Role.OPEN:
                resting.append((level, order))
                continue  # a slot still opening closes once its opening order is done
            close = self._close_of(slot)
            if (
                close is None
                and order is not None
                and order.qty - order.filled_qty == abs(slot.inventory_qty)
            ):  # a resting close whose remainder is below the venue minimum: keep it
                close = (
                    order.level + (1 if order.side is Side.SELL else -1),
                    order.side,
                    order.price,
                    order.qty - order.filled_qty,
                )
            if close is None or self._backing_off(slot, now_ms):
                continue
            target, side, price, qty = close
            inside = 0 if lo <= target <= hi else 2
            wants[level] = (inside, abs(target - centre), level, close_role, side, price, qty)
        if risk_halted:
            return wants
        self._add_openings(wants, slots, range(first_buy, lo - 1, -1), Side.BUY, centre, now_ms)
        if self._neutral:
            self._add_openings(wants, slots, range(first_sell, hi + 1), Side.SELL, centre, now_ms)
        for level, order in resting:  # resting openings the price moves towards are kept
            if level in wants:
                continue
            buy = order.side is Side.BUY
            if (buy and level >= lo - TRAIL_SLACK) or (not buy and level <= hi + TRAIL_SLACK):
                distance = abs(level - centre)
                wants[level] = (1, distance, level, Role.OPEN, order.side, order.price, order.qty)
        return wants

    def _add_openings(
        self,
        wants: dict[int, _Want],
        slots: Mapping[int, Slot],
        levels: range,
        side: Side,
        centre: int,
        now_ms: int,
    ) -> None:
        for level in levels:
            slot = slots.get(level)
            if slot is not None and not self._openable(slot, side, now_ms):
                continue
            qty = self._opening_qty(level)
            if qty is not None:
                price = self.level_price(level)
                wants[level] = (1, abs(level - centre), level, Role.OPEN, side, price, qty)

    def _backing_off(self, slot: Slot, now_ms: int) -> bool:
        if slot.retry_after_ms > now_ms:
            self._valid_until_ms = min(self._valid_until_ms, slot.retry_after_ms)
            return True
        return False

    def _openable(self, slot: Slot, side: Side, now_ms: int) -> bool:
        if slot.order is not None or self._backing_off(slot, now_ms):
            return (
                slot.order is not None and slot.order.role is Role.OPEN and slot.order.side is side
            )
        if slot.inventory_qty == 0:
            return True
        same_side = (slot.inventory_qty > 0) == (side is Side.BUY)
        return same_side and not self._closable(slot)  # top up dust too small to close

    def _diff(
        self, snapshot: PositionSnapshot, wants: dict[int, _Want], risk_halted: bool
    ) -> list[Command]:
        budget = self.params.max_open_orders
        if len(wants) <= budget:
            keep = wants
        else:
            keep = dict(sorted(wants.items(), key=lambda item: item[1][:3])[:budget])
        cancels: list[Command] = []
        live = 0
        replaced = False
        for level, slot in snapshot.slots.items():
            order = slot.order
            if order is None:
                continue
            live += 1
            if order.cancel_requested or order.status in _UNACKNOWLEDGED:
                continue  # already cancelling, or INTENT/UNKNOWN being resolved
            reason = _cancel_reason(order, wants.get(level), level in keep, risk_halted)
            if reason:
                cancels.append(CancelOrder(self.symbol, order.client_id, level, reason))
                replaced = replaced or reason in _REPLACING
        fresh = sorted(
            (
                want
                for level, want in keep.items()
                if (slot := snapshot.slots.get(level)) is None or slot.order is None
            ),
            key=lambda want: want[:3],
        )
        room = budget - live
        self._complete = not replaced and len(fresh) <= max(room, 0)
        if room <= 0 or not fresh:
            return cancels
        reduce_only = self.rules.market_type is MarketType.LINEAR and _one_sided(snapshot)
        generation = snapshot.next_generation
        places: list[Command] = []
        for want in fresh[:room]:
            places.append(self._place(want, generation, reduce_only))
            generation += 1
        return cancels + places

    def _place(self, want: _Want, generation: int, reduce_only: bool) -> PlaceOrder:
        _, _, level, role, side, price, qty = want
        opening = role is Role.OPEN
        return PlaceOrder(
            symbol=self.symbol,
            client_id=ids.encode(
                self.params.strategy_id, self.symbol, level, role, side, generation
            ),
            level=level,
            role=role,
            side=side,
            price=price,
            qty=qty,
            post_only=opening and self.params.post_only,
            reduce_only=not opening and reduce_only,
        )


def _cancel_reason(order: SlotOrder, want: _Want | None, kept: bool, risk_halted: bool) -> str:
    if want is None:
        if order.role is Role.CLOSE:
            return "not_closable"
        return "risk" if risk_halted else "outside_window"
    _, _, _, role, side, _, qty = want
    if role is not order.role or side is not order.side:
        return "role_changed"
    if role is Role.CLOSE and order.qty - order.filled_qty != qty:
        return "resize"
    return "" if kept else "max_open_orders"


def _one_sided(snapshot: PositionSnapshot) -> bool:
    """True when no two slots hold inventory of opposite signs. Only then do the closes add up
    to the net position, so each can be reduce-only on a one-way (net) perpetual account."""
    signs = {s.inventory_qty > 0 for s in snapshot.slots.values() if s.inventory_qty}
    return len(signs) <= 1
