"""Recovery: bring the journal and the exchange into agreement before quoting (DESIGN 4).

Owns: the startup (and periodic, and after-reconnect) reconciliation steps:
1. load slots and orders from the journal (an empty journal is fine);
2. resolve every INTENT/UNKNOWN order by client id: found -> adopt its status and fills; still not
   found once the venue's consistency window has passed since recovery began (any send happened
   before that) -> never placed;
3. open orders: ours that the journal does not know are adopted (a second one on a busy slot is
   cancelled); foreign orders are never touched; journal orders no longer open get their final
   status and fills (a fill that happened while we were down is applied, not lost); a cancel we
   journaled but may never have sent is asked for again;
4. fills since the watermark: any of our live orders with newer trades is refreshed;
5. inventory vs exchange position (linear) or base balance change (spot). No journal: rebuild the
   slots from the exchange now, in the same transaction as the anchor. Journal disagrees: re-sync
   (a fill may have landed while we looked) and compare again; still off -> `ReconcileMismatch`.
Must not: guess. Anything it cannot explain raises and the symbol does not trade.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from mm.core import ids
from mm.core.grid import GridStrategy
from mm.core.model import ZERO, MarketType, OrderReport, OrderStatus, Role, Side
from mm.core.position import PositionManager, SlotOrder
from mm.core.rounding import qty_for_notional, size_problem
from mm.errors import ConfigError, ExchangeUnavailable, OrderNotFound, ReconcileMismatch

if TYPE_CHECKING:
    from mm.engine.symbol_engine import SymbolEngine

log = logging.getLogger(__name__)

INVENTORY_CHECKS = 3  # re-syncs before a disagreement counts as a mismatch
LOOKUP_POLL_S = 0.2  # interval between lookups while waiting out a consistency window
MAX_REBUILD_LEVELS = 10_000


async def recover(engine: SymbolEngine, *, load: bool) -> None:
    fresh = _load(engine) if load else False
    await _resolve_unsent(engine)
    await _sync_open_orders(engine)
    await _sync_fills(engine)
    await _check_inventory(engine, fresh)
    engine._commit()


def _window_ms(engine: SymbolEngine) -> int:
    return max(engine.config.consistency_window_ms, engine.exchange.consistency_window_ms)


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
        anchor = Decimal(state.meta["anchor"])
        engine.strategy = GridStrategy(engine.config.params, engine.rules, anchor)
    except ValueError as e:
        raise ConfigError(f"grid does not fit the journaled anchor of {engine.symbol}: {e}") from e
    return False


# -- step 2 -------------------------------------------------------------------------------------
async def _resolve_unsent(engine: SymbolEngine) -> None:
    unsent = [
        o for o in engine.pm.live_orders() if o.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN)
    ]
    if not unsent:
        return
    deadline = engine.clock.now_ms() + _window_ms(engine)  # every send happened before now
    for order in unsent:
        engine.apply(await _final_or_never_placed(engine, order, deadline))
    engine._commit()


async def _final_or_never_placed(
    engine: SymbolEngine, order: SlotOrder, deadline_ms: int
) -> OrderReport:
    while True:
        try:
            return await engine.exchange.fetch_order(engine.symbol, order.client_id)
        except OrderNotFound:
            wait_ms = deadline_ms - engine.clock.now_ms()
            if wait_ms <= 0:
                log.info("%s %s was never placed", engine.symbol, order.client_id)
                return engine._report(order, OrderStatus.REJECTED, "never_placed")
            await engine.clock.sleep(min(wait_ms / 1000, LOOKUP_POLL_S))


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
            engine.apply(report)
            # still open: a cancel we journaled may never have left; let the strategy ask again
            engine.pm.record_cancel_requested(client_id, now, False)
        elif not engine.pm.adopt(report, now):
            log.warning("%s: cancelling stray order %s on a busy slot", engine.symbol, client_id)
            engine.apply(await engine.exchange.cancel_order(engine.symbol, client_id))
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
        acknowledged_ms = max(order.created_ms, order.updated_ms)
        if engine.clock.now_ms() < acknowledged_ms + _window_ms(engine):
            return  # acknowledged moments ago; the venue's lookups do not show it yet
        raise ReconcileMismatch(
            f"{engine.symbol}: order {order.client_id} is {order.status.value} in the journal "
            "but unknown to the exchange"
        ) from None
    engine.apply(report)


# -- step 4 -------------------------------------------------------------------------------------
async def _sync_fills(engine: SymbolEngine) -> None:
    meta = engine.journal.meta(engine.symbol)
    watermark = int(meta.get("fills_watermark_ms", "0"))
    fills = await engine.exchange.fetch_fills(engine.symbol, watermark)
    newest = max((f.ts_ms for f in fills), default=watermark)
    for client_id in {f.client_id for f in fills}:
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
    tolerance = engine.config.reconcile_tolerance_qty
    for attempt in range(INVENTORY_CHECKS):
        exchange_qty, entry = await _exchange_inventory(engine, fresh)
        journal_qty = engine.pm.inventory_qty()
        diff = exchange_qty - journal_qty
        if fresh:
            await _adopt_exchange_inventory(engine, diff, entry)
            return
        if abs(diff) <= tolerance:
            return
        if attempt + 1 < INVENTORY_CHECKS:  # a fill may have landed while we looked
            await _sync_open_orders(engine)
            await _sync_fills(engine)
    raise ReconcileMismatch(
        f"{engine.symbol}: journal inventory {journal_qty} but exchange shows {exchange_qty} "
        f"(difference {diff}); refusing to trade until a human looks"
    )


async def _adopt_exchange_inventory(engine: SymbolEngine, diff: Decimal, entry: Decimal) -> None:
    """No journal: the exchange is the only truth. Fix the anchor (from our resting orders, else
    the current price) and give the inventory back to slots, all in recovery's transaction."""
    anchor = _derive_anchor(engine)
    if not diff:
        if anchor is not None:
            engine.establish_anchor(anchor)
        return  # otherwise the first tick fixes the anchor
    price = await _current_price(engine)
    if price is None:
        raise ExchangeUnavailable(
            f"{engine.symbol}: no market price yet to rebuild {diff} inventory at; retrying"
        )
    engine.establish_anchor(anchor if anchor is not None else price)
    rebuild_inventory(engine, diff, entry, price)


async def _current_price(engine: SymbolEngine) -> Decimal | None:
    if engine.last_tick is not None:
        return engine.last_tick.price
    candles = await engine.exchange.fetch_klines(engine.symbol, "1m", limit=1)
    return candles[-1].close if candles else None


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


def rebuild_inventory(engine: SymbolEngine, qty: Decimal, entry: Decimal, price: Decimal) -> None:
    """Give exchange inventory back to slots: first to slots whose adopted closing order shows
    what they held, then spread the rest over free slots from the current level outwards."""
    strategy = engine.strategy
    assert strategy is not None
    remaining = abs(qty)
    step = 1 if qty > 0 else -1
    held_side = Side.SELL if step > 0 else Side.BUY  # the close of a long slot sells
    for order in engine.pm.live_orders():
        if order.role is Role.CLOSE and order.side is held_side and remaining > 0:
            part = min(order.qty - order.filled_qty, remaining)
            level_entry = entry or strategy.level_price(order.level)
            engine.pm.set_inventory(order.level, part * step, level_entry, keep_order=True)
            remaining -= part
    _spread(engine, remaining, step, entry, strategy.nearest_level(price))
    log.warning("%s: rebuilt %s inventory from the exchange", engine.symbol, qty)


def _spread(
    engine: SymbolEngine, remaining: Decimal, step: int, entry: Decimal, start: int
) -> None:
    """Plan level by level (free slots only, prices > 0), then apply each slot once."""
    strategy, rules = engine.strategy, engine.rules
    assert strategy is not None and rules is not None
    params = engine.config.params
    plan: list[list] = []  # [level, qty]
    level = start
    for _ in range(MAX_REBUILD_LEVELS):
        if remaining <= 0:
            break
        price = strategy.level_price(level)
        if price <= 0 or strategy.level_price(level + step) <= 0:
            break  # this slot's close would have no valid price
        slot = engine.pm.slot(level)
        if slot.order is None and slot.inventory_qty == 0:
            size = params.level_qty or qty_for_notional(params.level_notional or ZERO, price, rules)
            part = min(size, remaining) if size > 0 else remaining
            if remaining - part > 0 and size_problem(price, remaining - part, rules):
                part = remaining  # do not leave an unclosable remainder behind
            plan.append([level, part])
            remaining -= part
        level += step
    if remaining > 0:
        if not plan:
            raise ReconcileMismatch(f"{engine.symbol}: no slot can hold {remaining} inventory")
        plan[-1][1] += remaining  # the lattice ran out: the last slot takes the rest
    for level, part in plan:
        engine.pm.set_inventory(level, part * step, entry or strategy.level_price(level))
