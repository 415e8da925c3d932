"""PositionManager: price-level slots, their single live order, inventory and realized PnL.

Owns: the truth about what we hold and which orders are ours, applied from order reports by the
delta of cumulative filled quantity, cost and fee. Applying a report twice, or an older report
after a newer one, changes nothing. Must not: decide what to trade (that is `grid`), do IO, or read
a clock (timestamps arrive inside events).

Every mutation is also recorded as a change (slot rows, order rows, fill rows) that the engine
takes with `take_changes()` and journals in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType

from mm.core import ids
from mm.core.commands import PlaceOrder
from mm.core.model import ZERO, CoreInvariantError, OrderReport, OrderStatus, Role, Side

REJECT_BACKOFF_MS = 1_000
MAX_REJECT_BACKOFF_MS = 60_000


@dataclass(frozen=True, slots=True)
class SlotOrder:
    """The one live order a slot may have (also the row journaled for every order)."""

    client_id: str
    level: int
    role: Role
    side: Side
    price: Decimal
    qty: Decimal
    status: OrderStatus
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    fee: Decimal = ZERO
    exchange_id: str = ""
    post_only: bool = False
    reduce_only: bool = False
    cancel_requested: bool = False
    reason: str = ""
    created_ms: int = 0
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class Slot:
    """Lattice level k: signed inventory held since its opening fills, and its live order."""

    level: int
    inventory_qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    open_fees: Decimal = ZERO  # fees paid on the inventory still held, charged when it closes
    order: SlotOrder | None = None
    generation: int = 0
    post_only_rejects: int = 0
    rejects: int = 0
    retry_after_ms: int = 0

    @property
    def is_idle(self) -> bool:
        return (
            self.inventory_qty == 0
            and self.order is None
            and self.rejects == 0
            and self.post_only_rejects == 0
        )


@dataclass(frozen=True, slots=True)
class FillDelta:
    """Inventory change from one report: the increase of an order's cumulative filled qty."""

    client_id: str
    level: int
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    cum_filled_qty: Decimal
    realized_pnl: Decimal
    closed_round_trip: bool
    ts_ms: int


@dataclass(slots=True)
class Changes:
    """What changed since the last `take_changes()`: slot rows (None = idle), order rows, fills."""

    slots: dict[int, Slot | None] = field(default_factory=dict)
    orders: dict[str, SlotOrder] = field(default_factory=dict)
    fills: list[FillDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.slots or self.orders or self.fills)


@dataclass(frozen=True, slots=True)
class Totals:
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    volume_quote: Decimal = ZERO
    fill_count: int = 0
    round_trips: int = 0


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A read-only view; `version` changes whenever anything in the manager changes."""

    symbol: str
    slots: Mapping[int, Slot]
    next_generation: int
    totals: Totals
    version: int

    @property
    def inventory_qty(self) -> Decimal:
        return sum((s.inventory_qty for s in self.slots.values()), ZERO)

    def live_orders(self) -> list[SlotOrder]:
        return [s.order for s in self.slots.values() if s.order is not None]


class PositionManager:
    def __init__(
        self,
        symbol: str,
        slots: Iterable[Slot] = (),
        next_generation: int = 1,
        totals: Totals = Totals(),
    ) -> None:
        self.symbol = symbol
        self._slots: dict[int, Slot] = {}
        self._by_client: dict[str, int] = {}
        self._next_generation = next_generation
        self._totals = totals
        self._version = 0
        self._snapshot: PositionSnapshot | None = None
        self._changes = Changes()
        for slot in slots:
            self._slots[slot.level] = slot
            if slot.order is not None:
                self._by_client[slot.order.client_id] = slot.level

    # -- reading ---------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    @property
    def totals(self) -> Totals:
        return self._totals

    @property
    def next_generation(self) -> int:
        return self._next_generation

    def slot(self, level: int) -> Slot:
        return self._slots.get(level) or Slot(level)

    def order(self, client_id: str) -> SlotOrder | None:
        level = self._by_client.get(client_id)
        return None if level is None else self._slots[level].order

    def live_orders(self) -> list[SlotOrder]:
        return [self._slots[level].order for level in self._by_client.values()]  # type: ignore[misc]

    def inventory_qty(self) -> Decimal:
        return sum((s.inventory_qty for s in self._slots.values()), ZERO)

    def snapshot(self) -> PositionSnapshot:
        if self._snapshot is None or self._snapshot.version != self._version:
            self._snapshot = PositionSnapshot(
                self.symbol,
                MappingProxyType(dict(self._slots)),
                self._next_generation,
                self._totals,
                self._version,
            )
        return self._snapshot

    @property
    def changes(self) -> Changes:
        """Everything changed since the last `clear_changes()` (not cleared by reading)."""
        return self._changes

    def clear_changes(self) -> None:
        self._changes = Changes()

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    # -- writing ---------------------------------------------------------------------------
    def _put(self, slot: Slot) -> None:
        if slot.is_idle:
            self._slots.pop(slot.level, None)
            self._changes.slots[slot.level] = None
        else:
            self._slots[slot.level] = slot
            self._changes.slots[slot.level] = slot
        self._version += 1

    def _put_order(self, slot: Slot, order: SlotOrder) -> Slot:
        """Store the order row; a terminal order leaves the slot."""
        self._changes.orders[order.client_id] = order
        if order.status.is_terminal:
            self._by_client.pop(order.client_id, None)
            return replace(slot, order=None)
        self._by_client[order.client_id] = slot.level
        return replace(slot, order=order)

    def record_intent(self, cmd: PlaceOrder, ts_ms: int) -> SlotOrder:
        """Put a new order on its slot as INTENT (before it is sent). One live order per slot."""
        key = ids.parse(cmd.client_id)
        if key is None or key.level != cmd.level:
            raise CoreInvariantError(
                f"command id {cmd.client_id} does not encode level {cmd.level}"
            )
        slot = self.slot(cmd.level)
        if slot.order is not None:
            raise CoreInvariantError(
                f"slot {cmd.level} already has live order {slot.order.client_id}"
            )
        order = SlotOrder(
            client_id=cmd.client_id,
            level=cmd.level,
            role=cmd.role,
            side=cmd.side,
            price=cmd.price,
            qty=cmd.qty,
            status=OrderStatus.INTENT,
            post_only=cmd.post_only,
            reduce_only=cmd.reduce_only,
            created_ms=ts_ms,
            updated_ms=ts_ms,
        )
        slot = self._put_order(
            replace(slot, generation=max(slot.generation, key.generation)), order
        )
        self._next_generation = max(self._next_generation, key.generation + 1)
        self._put(slot)
        return order

    def record_cancel_requested(self, client_id: str, ts_ms: int, requested: bool = True) -> None:
        """Mark (or, after a failed cancel, unmark) a live order as being cancelled."""
        level = self._by_client.get(client_id)
        if level is None:
            return
        slot = self._slots[level]
        if slot.order is None or slot.order.cancel_requested == requested:
            return
        order = replace(slot.order, cancel_requested=requested, updated_ms=ts_ms)
        self._put(self._put_order(slot, order))

    def adopt(self, report: OrderReport, ts_ms: int) -> bool:
        """Take over a live order of ours found on the exchange that the journal does not know.

        Its fills so far are taken as already reflected in the exchange position, not as new
        inventory: recovery compares inventory with the exchange afterwards and either rebuilds
        (no journal) or halts (journal disagrees). Returns False when the slot already has a live
        order (the caller cancels the stray one instead).
        """
        key = ids.parse(report.client_id)
        if key is None or report.status.is_terminal:
            raise CoreInvariantError(f"cannot adopt {report.client_id} ({report.status.name})")
        slot = self.slot(key.level)
        if slot.order is not None:
            return False
        order = SlotOrder(
            client_id=report.client_id,
            level=key.level,
            role=key.role,
            side=key.side,
            price=report.price,
            qty=report.qty,
            status=report.status,
            filled_qty=report.filled_qty,
            avg_price=report.avg_price,
            fee=report.fee,
            exchange_id=report.exchange_id,
            post_only=report.post_only,
            reduce_only=report.reduce_only,
            reason="adopted",
            created_ms=ts_ms,
            updated_ms=ts_ms,
        )
        slot = self._put_order(
            replace(slot, generation=max(slot.generation, key.generation)), order
        )
        self._next_generation = max(self._next_generation, key.generation + 1)
        self._put(slot)
        return True

    def set_inventory(
        self, level: int, qty: Decimal, entry_price: Decimal, *, keep_order: bool = False
    ) -> None:
        """Rebuild a slot's holding (recovery on a node without a journal). The slot must hold
        nothing; it may keep its live (closing) order when `keep_order` is set."""
        slot = self.slot(level)
        if slot.inventory_qty != 0 or (slot.order is not None and not keep_order):
            raise CoreInvariantError(f"slot {level} is not empty")
        self._put(replace(slot, inventory_qty=qty, entry_price=entry_price))

    def apply_report(self, report: OrderReport) -> FillDelta | None:
        """Apply the exchange's view of one of our live orders. Idempotent; stale reports no-op.

        Returns the inventory change if the cumulative filled quantity grew.
        """
        level = self._by_client.get(report.client_id)
        if level is None:
            return None  # not live: unknown, foreign, or already finished (a late duplicate)
        slot = self._slots[level]
        order = slot.order
        assert order is not None
        fill = None
        if report.filled_qty > order.filled_qty:
            slot, fill = self._apply_fill(slot, order, report)
            self._changes.fills.append(fill)
            order = replace(
                order,
                filled_qty=report.filled_qty,
                avg_price=report.avg_price or order.price,
                fee=max(report.fee, order.fee),
            )
        status = order.status
        if report.status.rank > status.rank or report.status is OrderStatus.PARTIALLY_FILLED:
            status = report.status
        if (
            status is order.status
            and fill is None
            and (order.exchange_id or not report.exchange_id)
        ):
            return None
        slot = self._after_status(slot, order, status, report)
        order = replace(
            order,
            status=status,
            exchange_id=order.exchange_id or report.exchange_id,
            reason=report.reason or order.reason,
            updated_ms=max(order.updated_ms, report.ts_ms),
        )
        self._put(self._put_order(slot, order))
        return fill

    def _after_status(
        self, slot: Slot, order: SlotOrder, status: OrderStatus, report: OrderReport
    ) -> Slot:
        if status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
            return replace(slot, post_only_rejects=0, rejects=0, retry_after_ms=0)
        if status is OrderStatus.REJECTED and order.status is not OrderStatus.REJECTED:
            if report.reason == "post_only":
                return replace(slot, post_only_rejects=slot.post_only_rejects + 1)
            if report.reason == "never_placed":
                return slot
            backoff = min(REJECT_BACKOFF_MS << min(slot.rejects, 16), MAX_REJECT_BACKOFF_MS)
            return replace(slot, rejects=slot.rejects + 1, retry_after_ms=report.ts_ms + backoff)
        return slot

    def _apply_fill(
        self, slot: Slot, order: SlotOrder, report: OrderReport
    ) -> tuple[Slot, FillDelta]:
        qty = report.filled_qty - order.filled_qty
        new_cost = report.filled_qty * (report.avg_price or order.price)
        old_cost = order.filled_qty * (order.avg_price or order.price)
        price = (new_cost - old_cost) / qty
        fee = max(report.fee - order.fee, ZERO)
        slot, pnl, closed = _move_inventory(slot, order.side.sign * qty, price, fee)
        self._totals = Totals(
            realized_pnl=self._totals.realized_pnl + pnl,
            fees=self._totals.fees + fee,
            volume_quote=self._totals.volume_quote + qty * price,
            fill_count=self._totals.fill_count + 1,
            round_trips=self._totals.round_trips + closed,
        )
        delta = FillDelta(
            client_id=order.client_id,
            level=order.level,
            side=order.side,
            qty=qty,
            price=price,
            fee=fee,
            cum_filled_qty=report.filled_qty,
            realized_pnl=pnl,
            closed_round_trip=closed,
            ts_ms=report.ts_ms,
        )
        return slot, delta


def _move_inventory(
    slot: Slot, signed_qty: Decimal, price: Decimal, fee: Decimal
) -> tuple[Slot, Decimal, bool]:
    """Add a signed fill to a slot. Returns (slot, realized PnL, whether the slot went flat).

    Adding to (or opening) a position averages the entry price and carries the fee; reducing it
    realizes (price - entry) * qty in the position's direction, net of the closing fee and of the
    share of opening fees carried by the closed quantity. Overshooting zero opens the rest on the
    other side at `price`.
    """
    inv = slot.inventory_qty
    if inv == 0 or (inv > 0) == (signed_qty > 0):
        new_inv = inv + signed_qty
        entry = (abs(inv) * slot.entry_price + abs(signed_qty) * price) / abs(new_inv)
        slot = replace(
            slot, inventory_qty=new_inv, entry_price=entry, open_fees=slot.open_fees + fee
        )
        return slot, ZERO, False
    closed = min(abs(signed_qty), abs(inv))
    direction = 1 if inv > 0 else -1
    carried_fee = slot.open_fees * closed / abs(inv)
    close_fee = fee * closed / abs(signed_qty)
    pnl = (price - slot.entry_price) * closed * direction - carried_fee - close_fee
    new_inv = inv + signed_qty
    if new_inv == 0:
        return replace(slot, inventory_qty=ZERO, entry_price=ZERO, open_fees=ZERO), pnl, True
    if (new_inv > 0) == (inv > 0):
        slot = replace(slot, inventory_qty=new_inv, open_fees=slot.open_fees - carried_fee)
        return slot, pnl, False
    flipped = replace(slot, inventory_qty=new_inv, entry_price=price, open_fees=fee - close_fee)
    return flipped, pnl, True
