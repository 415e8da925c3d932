"""Recovery: bring the journal and the exchange into agreement before quoting (DESIGN 4).

Owns: the startup (and periodic, and after-reconnect) reconciliation steps:
1. load slots and orders from the journal (an empty journal is fine);
2. resolve every INTENT/UNKNOWN order by client id: found -> adopt its status and fills; not found
   after the venue's consistency window -> never placed;
3. open orders: ours that the journal does not know are adopted (a second one on a busy slot is
   cancelled); foreign orders are never touched; journal orders no longer open get their final
   status and fills (a fill that happened while we were down is applied, not lost);
4. fills since the watermark: any of our live orders with newer trades is refreshed;
5. inventory vs exchange position (linear) or base balance change (spot): no journal -> rebuild
   slots from the exchange; journal disagrees beyond tolerance -> `ReconcileMismatch` (halt).
Must not: guess. Anything it cannot explain raises and the symbol does not trade.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from mm.core import ids
from mm.core.grid import GridStrategy
from mm.core.model import ZERO, MarketType, OrderReport, OrderStatus, Role, Side
from mm.core.position import PositionManager, SlotOrder
from mm.core.rounding import qty_for_notional, size_problem
from mm.errors import ConfigError, OrderNotFound, ReconcileMismatch

if TYPE_CHECKING:
    from mm.engine.symbol_engine import SymbolEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rebuild:
    """Inventory found on the exchange without a journal, to spread over slots at the anchor."""

    qty: Decimal
    entry_price: Decimal
    anchor: Decimal | None = None  # derived from our adopted orders, if any


async def recover(engine: SymbolEngine, *, load: bool) -> None:
    fresh = False
    if load:
        fresh = _load(engine)
    await _resolve_unsent(engine)
    await _sync_open_orders(engine)
    await _sync_fills(engine)
    await _check_inventory(engine, fresh)
    engine._commit()


# -- step 1 -------------------------------------------------------------------------------------
def _load(engine: SymbolEngine) -> bool:
    """Load the journal; returns True when there was none (a fresh node)."""
    assert engine.rules is not None
    state = engine.journal.load(engine.symbol)
    if not state.exists:
        engine.journal.reset(engine.symbol)  # leftovers of a start that never set an anchor
        # A time-based sequence start keeps new ids apart from any this account used before.
        engine.pm = PositionManager(engine.symbol, next_generation=engine.clock.now_ms())
        engine.strategy = None
        return True
    engine.pm = PositionManager(
        engine.symbol, state.slots, max(state.next_generation, 1), state.totals
    )
    try:
        engine.strategy = GridStrategy(
            engine.config.params, engine.rules, Decimal(state.meta["anchor"])
        )
    except ValueError as e:
        raise ConfigError(f"grid does not fit the journaled anchor of {engine.symbol}: {e}") from e
    return False


# -- step 2 -------------------------------------------------------------------------------------
async def _resolve_unsent(engine: SymbolEngine) -> None:
    for order in engine.pm.live_orders():
        if order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
            engine.pm.apply_report(await _final_or_never_placed(engine, order))
    engine._commit()


async def _final_or_never_placed(engine: SymbolEngine, order: SlotOrder) -> OrderReport:
    while True:
        try:
            return await engine.exchange.fetch_order(engine.symbol, order.client_id)
        except OrderNotFound:
            window = max(engine.config.consistency_window_ms, engine.exchange.consistency_window_ms)
            wait_ms = window - (engine.clock.now_ms() - order.created_ms)
            if wait_ms <= 0:
                log.info("%s %s was never placed", engine.symbol, order.client_id)
                return engine._report(order, OrderStatus.REJECTED, "never_placed")
            await engine.clock.sleep(wait_ms / 1000)


# -- step 3 -------------------------------------------------------------------------------------
async def _sync_open_orders(engine: SymbolEngine) -> None:
    strategy_id = engine.config.params.strategy_id
    open_orders = await engine.exchange.fetch_open_orders(engine.symbol)
    ours = {
        r.client_id: r for r in open_orders if ids.is_ours(r.client_id, strategy_id, engine.symbol)
    }
    now = engine.clock.now_ms()
    for client_id, report in ours.items():
        if engine.pm.order(client_id) is not None:
            engine.pm.apply_report(report)
        elif not engine.pm.adopt(report, now):
            log.warning("%s: cancelling stray order %s on a busy slot", engine.symbol, client_id)
            engine.pm.apply_report(await engine.exchange.cancel_order(engine.symbol, client_id))
        else:
            log.warning("%s: adopted order %s unknown to the journal", engine.symbol, client_id)
    for order in engine.pm.live_orders():
        if order.client_id not in ours:
            await _refresh(engine, order)
    engine._commit()


async def _refresh(engine: SymbolEngine, order: SlotOrder) -> None:
    try:
        report = await engine.exchange.fetch_order(engine.symbol, order.client_id)
    except OrderNotFound:
        raise ReconcileMismatch(
            f"{engine.symbol}: order {order.client_id} is {order.status.value} in the journal "
            "but unknown to the exchange"
        ) from None
    engine.pm.apply_report(report)


# -- step 4 -------------------------------------------------------------------------------------
async def _sync_fills(engine: SymbolEngine) -> None:
    meta = engine.journal.meta(engine.symbol)
    watermark = int(meta.get("fills_watermark_ms", "0"))
    fills = await engine.exchange.fetch_fills(engine.symbol, watermark)
    newest = watermark
    traded: dict[str, Decimal] = {}
    for fill in fills:
        newest = max(newest, fill.ts_ms)
        traded[fill.client_id] = traded.get(fill.client_id, ZERO) + fill.qty
    for client_id in traded:
        order = engine.pm.order(client_id)
        if order is not None:
            await _refresh(engine, order)
    engine._commit()
    if newest != watermark:
        engine.journal.set_meta(engine.symbol, fills_watermark_ms=str(newest))


# -- step 5 -------------------------------------------------------------------------------------
async def _exchange_inventory(engine: SymbolEngine, fresh: bool) -> tuple[Decimal, Decimal]:
    """(inventory qty on the exchange attributable to this grid, its entry price or 0)."""
    rules = engine.rules
    assert rules is not None
    if rules.market_type is MarketType.LINEAR:
        position = (await engine.exchange.fetch_positions([engine.symbol]))[engine.symbol]
        return position.qty, position.entry_price
    balances = await engine.exchange.fetch_balances()
    held = balances[rules.base].total if rules.base in balances else ZERO
    baseline_text = engine.journal.meta(engine.symbol).get("base_baseline")
    if baseline_text is None:
        baseline = engine.config.spot_base_baseline
        if baseline is None:
            baseline = held if fresh else ZERO
            if fresh and held:
                log.warning(
                    "%s: no journal; %s %s already on the account is treated as not ours "
                    "(set spot_base_baseline to rebuild it as grid inventory)",
                    engine.symbol,
                    held,
                    rules.base,
                )
        engine.journal.set_meta(engine.symbol, base_baseline=str(baseline))
    else:
        baseline = Decimal(baseline_text)
    return held - baseline, ZERO


async def _check_inventory(engine: SymbolEngine, fresh: bool) -> None:
    exchange_qty, entry = await _exchange_inventory(engine, fresh)
    journal_qty = engine.pm.inventory_qty()
    diff = exchange_qty - journal_qty
    if fresh or engine.pending_rebuild is not None:
        # No journal: the exchange is the only truth. The rebuild waits for the first tick so the
        # anchor and the rebuilt slots are journaled in one transaction.
        anchor = _derive_anchor(engine) if engine.strategy is None else engine.strategy.anchor
        engine.pending_rebuild = Rebuild(diff, entry, anchor) if diff else None
        if not diff and anchor is not None and engine.strategy is None:
            engine.establish_anchor(anchor)
        return
    if abs(diff) > engine.config.reconcile_tolerance_qty:
        raise ReconcileMismatch(
            f"{engine.symbol}: journal inventory {journal_qty} but exchange shows {exchange_qty} "
            f"(difference {diff}); refusing to trade until a human looks"
        )


def _derive_anchor(engine: SymbolEngine) -> Decimal | None:
    """On a fresh node, recover the lattice anchor from our adopted orders (all must agree)."""
    interval = engine.config.params.interval
    anchors = set()
    for order in engine.pm.live_orders():
        offset = 0 if order.role is Role.OPEN else (1 if order.side is Side.SELL else -1)
        anchors.add(order.price - (order.level + offset) * interval)
    if len(anchors) > 1:
        raise ReconcileMismatch(
            f"{engine.symbol}: our open orders imply different anchors {anchors}"
        )
    return anchors.pop() if anchors else None


def rebuild_inventory(engine: SymbolEngine, rebuild: Rebuild) -> None:
    """Give exchange inventory back to slots: first to slots whose adopted closing order shows
    what they held, then spread the rest over free slots from the current level outwards."""
    strategy = engine.strategy
    assert strategy is not None and engine.last_tick is not None
    remaining = abs(rebuild.qty)
    step = 1 if rebuild.qty > 0 else -1
    for order in engine.pm.live_orders():
        held_side = Side.SELL if step > 0 else Side.BUY  # the close of a long slot sells
        if order.role is Role.CLOSE and order.side is held_side and remaining > 0:
            qty = min(order.qty - order.filled_qty, remaining)
            entry = rebuild.entry_price or strategy.level_price(order.level)
            engine.pm.set_inventory(order.level, qty * step, entry, keep_order=True)
            remaining -= qty
    _spread(engine, remaining, step, rebuild.entry_price)
    engine.pending_rebuild = None
    log.warning("%s: rebuilt %s inventory from the exchange", engine.symbol, rebuild.qty)


def _spread(engine: SymbolEngine, remaining: Decimal, step: int, entry_price: Decimal) -> None:
    strategy, rules = engine.strategy, engine.rules
    assert strategy is not None and rules is not None and engine.last_tick is not None
    params = engine.config.params
    level = strategy.nearest_level(engine.last_tick.price)
    while remaining > 0:
        slot = engine.pm.slot(level)
        price = strategy.level_price(level)
        if slot.order is None and slot.inventory_qty == 0 and price > 0:
            size = params.level_qty or qty_for_notional(params.level_notional or ZERO, price, rules)
            qty = min(size, remaining) if size > 0 else remaining
            if size_problem(price, remaining - qty, rules) and remaining - qty > 0:
                qty = remaining  # do not leave an unclosable remainder behind
            engine.pm.set_inventory(level, qty * step, entry_price or price)
            remaining -= qty
        level += step
