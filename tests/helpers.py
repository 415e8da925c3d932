"""Test rigs built from real parts: SimulatedExchange, SQLite journal, SymbolEngine, clocks.

`Rig.step(price)` is one path point as the backtest defines it: the venue moves and matches, the
engine gets the reports, then the tick. `check_invariants` asserts DESIGN 4's promises against
the venue's own books.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core import ids
from mm.core.grid import GridMode, GridParams
from mm.core.model import LIVE_STATUSES, MarketType, OrderReport, PriceTick
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.store.journal import Journal

T0 = 1_700_000_000_000
POLL_S = 0.005  # interval between checks of a polled condition (never a fixed wait)


def grid(mode: str = "long", **overrides: Any) -> GridParams:
    values: dict[str, Any] = dict(
        strategy_id="t1",
        mode=GridMode(mode),
        interval=D("100"),
        buy_levels=3,
        sell_levels=3,
        max_open_orders=12,
        level_qty=D("0.01"),
    )
    values.update(overrides)
    if "level_notional" in overrides:
        values.pop("level_qty")
    return GridParams(**values)


@dataclass
class Rig:
    clock: VirtualClock
    sim: SimulatedExchange
    journal: Journal
    engine: SymbolEngine
    symbol: str
    reports: list[OrderReport] = field(default_factory=list)

    async def step(self, price: str | D, advance_ms: int = 1000) -> list[OrderReport]:
        self.clock.advance(advance_ms)
        price = D(price)
        tick = PriceTick(self.symbol, price, self.clock.now_ms())
        reports = self.sim.set_price(self.symbol, price)
        if self.engine.last_tick is not None:
            self.engine.note_price(tick)
        for report in reports:
            await self.engine.on_order_report(report)
        await self.engine.on_tick(tick)
        self.reports += reports
        return reports

    def live(self) -> dict[int, tuple[str, str, D, D]]:
        """Live orders by level: (role, side, price, qty)."""
        return {
            o.level: (o.role.value, o.side.value, o.price, o.qty)
            for o in self.engine.pm.live_orders()
        }

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.journal.db.query(f"SELECT * FROM {table} ORDER BY rowid"))

    def slot_rows(self) -> dict[int, dict[str, Any]]:
        return {r["level"]: r for r in self.rows("slots")}

    def sim_order(self, level: int) -> Any:
        live = [o for o in self.sim.orders(self.symbol) if not o.status.is_terminal]
        matches = [o for o in live if ids.parse(o.client_id).level == level]  # type: ignore[union-attr]
        assert len(matches) == 1, matches
        return matches[0]


def make_rig(
    params: GridParams | None = None,
    *,
    symbol: str = "BTCUSDT",
    sim: SimConfig | None = None,
    journal: Journal | None = None,
    start_price: str = "10000",
    engine_config: dict[str, Any] | None = None,
    clock: VirtualClock | None = None,
    venue: SimulatedExchange | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> Rig:
    clock = clock or VirtualClock(T0)
    base = symbol.removesuffix("-PERP")
    config = sim or SimConfig(
        balances={"USDT": D(1_000_000)},
        start_prices={base: D(start_price)},
        maker_fee_rate=D("0.001"),
        taker_fee_rate=D("0.002"),
    )
    venue = venue or SimulatedExchange(config, clock)
    journal = journal or Journal(":memory:")
    engine = SymbolEngine(
        EngineConfig(symbol, params or grid(), **(engine_config or {})),
        venue,
        journal,
        clock,
        **({"on_phase": on_phase} if on_phase else {}),
    )
    return Rig(clock, venue, journal, engine, symbol)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def eventually(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds (never sleep a fixed time to wait for something)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)


def check_invariants(
    journal: Journal,
    venue: SimulatedExchange,
    symbol: str,
    strategy_id: str,
    *,
    base_baseline: D = D(0),
    complete_history: bool = True,
) -> dict[str, Any]:
    """DESIGN 4 invariants after any crash/restart sequence. Returns the numbers compared.

    `complete_history=False` is for a node that lost its journal: orders finished before the
    loss are unknown to it, so only the orders it knows are compared fill by fill.
    """
    ours = [o for o in venue.orders(symbol) if ids.is_ours(o.client_id, strategy_id, symbol)]
    open_ids = [o.client_id for o in ours if not o.status.is_terminal]
    assert len(open_ids) == len(set(open_ids)), "two live orders share a client id"
    journaled = {o.client_id: o for o in journal.orders(symbol)}
    live_statuses = {s for s in LIVE_STATUSES}
    for client_id in open_ids:
        assert client_id in journaled, f"live order {client_id} missing from the journal"
        assert journaled[client_id].status in live_statuses, (
            f"{client_id} is open on the venue but {journaled[client_id].status} in the journal"
        )
    levels = [ids.parse(c).level for c in open_ids]  # type: ignore[union-attr]
    assert len(levels) == len(set(levels)), f"two live orders on one slot: {sorted(levels)}"
    fills = journal.fills(symbol)
    journal_filled: dict[str, D] = {}
    for f in fills:
        journal_filled[f.client_id] = journal_filled.get(f.client_id, D(0)) + f.qty
    for order in ours:
        if not complete_history and order.client_id not in journaled:
            continue
        assert journal_filled.get(order.client_id, D(0)) == order.filled, (
            f"{order.client_id}: venue filled {order.filled}, journal counted "
            f"{journal_filled.get(order.client_id, D(0))}"
        )
    assert set(journal_filled) <= {o.client_id for o in ours}, "journal has fills the venue lacks"
    state = journal.load(symbol)
    inventory = sum((s.inventory_qty for s in state.slots), D(0))
    rules = venue._rules[symbol]
    if rules.market_type is MarketType.LINEAR:
        exchange_qty = venue.account.position_view(symbol).qty
    else:
        holding = venue.account.holdings.get(rules.base)
        total = holding.free + holding.locked if holding else D(0)
        exchange_qty = total - base_baseline
    assert inventory == exchange_qty, f"journal inventory {inventory} != exchange {exchange_qty}"
    realized = sum((f.realized_pnl for f in fills), D(0))
    assert state.totals.realized_pnl == realized, "realized PnL != sum over fills"
    assert state.totals.fill_count == len(fills)
    return {"inventory": inventory, "fills": len(fills), "realized": realized}
