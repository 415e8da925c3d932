"""The engine over the wire trades exactly like the engine in process.

Proven here: a SymbolEngine trading through RemoteExchange -> exchange_connector (gRPC on
loopback) -> SimulatedExchange reaches the same fills, inventory, realized PnL and venue balances
as the same engine trading the SimulatedExchange directly, on the same seeded price path.

Both runs go through ONE driver (`trade`), which differs only in the exchange the engine talks
to. Each path point follows the backtest's order (`tests.helpers.Rig.step`): the venue's clock
advances and the market moves (`set_price` on the venue itself), the engine gets the order
updates, then the tick. The updates come from the engine's own `stream_orders` subscription —
over gRPC in the remote run — never from `set_price`'s return value, and, as in live trading,
they include the echoes of the engine's own placements and cancels. A recording hub on the venue
counts every update it publishes, so the driver waits (polling, no fixed sleeps) for exactly
that many and never blocks or skips; every update must also arrive unchanged and in order.
Every few points the engine reconciles with the venue (open orders, fills, balances over the
same wire). A second case trades the linear perpetual with a Neutral grid (shorts, positions).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.streams import Hub
from mm.core.grid import GridParams
from mm.core.model import Fill, OrderReport, PriceTick, Side
from mm.core.position import FillDelta, SlotOrder, Totals
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, EngineState, SymbolEngine
from mm.ports import Exchange
from mm.store.journal import Journal
from tests.helpers import T0, check_invariants, eventually, grid, run
from tests.remote.rig import serve

SEED = 20240607
POINTS = 200
STEP_MS = 1_000
RECONCILE_EVERY = 50  # path points between reconciles
START = D("10000")
TICK = D("0.01")
STRATEGY = "t1"


class RecordingHub(Hub):
    """The venue's fan-out, also recording every order update it publishes, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._published: list[OrderReport] = []

    def order(self, report: Any) -> None:
        self._published.append(report)
        super().order(report)

    def published(self, symbol: str) -> list[OrderReport]:
        return [r for r in self._published if r.symbol == symbol]


def price_path(seed: int = SEED, n: int = POINTS) -> list[D]:
    """A seeded random walk around 10000 on the 0.01 tick: steps of about 1.5 grid intervals
    (many levels crossed, some gaps of several), one point in five exactly on a grid level."""
    rng = random.Random(seed)
    ticks = int(START / TICK)
    path = [START]
    while len(path) < n:
        ticks += round(rng.gauss(0, 15_000))
        ticks = min(max(ticks, 850_000), 1_150_000)  # stay within 8500..11500
        if rng.random() < 0.2:
            ticks = round(ticks, -4)  # exactly on a level of the 100-wide grid anchored at 10000
        path.append(ticks * TICK)
    return path


def venue() -> tuple[SimulatedExchange, RecordingHub, VirtualClock]:
    """A fresh venue, identical for both runs, with its own clock at T0."""
    clock = VirtualClock(T0)
    config = SimConfig(
        balances={"USDT": D(1_000_000)},
        start_prices={"BTCUSDT": START},
        maker_fee_rate=D("0.001"),
        taker_fee_rate=D("0.002"),
    )
    sim = SimulatedExchange(config, clock)
    hub = RecordingHub(sim.faults)
    sim.hub = hub  # before anyone subscribes
    return sim, hub, clock


@dataclass(frozen=True)
class Outcome:
    """What one run ended with (everything compared between the runs)."""

    fills: list[FillDelta]  # the journal's, in order
    # Every order the journal knows, final state included. Venue-assigned ids are left out here
    # and below: the engine sends a decision's orders concurrently, so over the wire the venue
    # may number two of them the other way round (nothing else depends on that order).
    orders: list[SlotOrder]
    totals: Totals  # the engine's (realized PnL, fees, volume, counts)
    journal_totals: Totals
    inventory: D
    balances: dict[str, tuple[D, D]]  # the venue's: asset -> (free, locked)
    positions: dict[str, D]  # the venue's position qty (0 on spot)
    venue_fills: list[Fill]  # the venue's own trade list (its ids left out)
    open_orders: list[tuple[Any, ...]]  # resting on the venue at the end
    invariants: dict[str, Any]
    updates: int  # order updates delivered to the engine
    seconds: float


class Feed:
    """Everything an order stream delivers, appended to `got` by a background reader."""

    def __init__(self, stream: AsyncIterator[OrderReport]) -> None:
        self.got: list[OrderReport] = []
        self._task = asyncio.get_running_loop().create_task(self._read(stream), name="feed")

    async def _read(self, stream: AsyncIterator[OrderReport]) -> None:
        async for report in stream:
            self.got.append(report)

    async def wait_for(self, n: int, what: str) -> list[OrderReport]:
        """The first `n` updates, once delivered (fails if the stream ends first)."""
        await eventually(
            lambda: len(self.got) >= n or self._task.done(),
            what=f"{n} order updates {what} (have {len(self.got)})",
        )
        if len(self.got) < n:
            raise AssertionError(f"the order stream ended {what}") from self._task.exception()
        return self.got[:n]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def trade(
    exchange: Exchange,
    sim: SimulatedExchange,
    hub: RecordingHub,
    clock: VirtualClock,
    journal: Journal,
    symbol: str,
    params: GridParams,
    path: list[D],
) -> Outcome:
    """The one driver of both runs: only `exchange` (the venue itself or a RemoteExchange in
    front of it) differs."""
    started = time.perf_counter()
    engine = SymbolEngine(EngineConfig(symbol, params), exchange, journal, clock)
    feed = Feed(exchange.stream_orders([symbol]))  # subscribed before the engine does anything
    try:
        await engine.start()
        assert engine.state is EngineState.QUOTING, engine.halt_reason
        applied = 0
        for i, price in enumerate(path):
            clock.advance(STEP_MS)
            tick = PriceTick(symbol, price, clock.now_ms())
            sim.set_price(symbol, price)  # the market moves; its reports reach us by the stream
            published = len(hub.published(symbol))  # with the echoes of earlier placements
            updates = (await feed.wait_for(published, f"at point {i}"))[applied:]
            applied = published
            if engine.last_tick is not None:
                engine.note_price(tick)
            for report in updates:
                await engine.on_order_report(report)
            await engine.on_tick(tick)
            if i % RECONCILE_EVERY == RECONCILE_EVERY - 1:
                await engine.reconcile()
            assert engine.state is EngineState.QUOTING, f"point {i}: {engine.halt_reason}"
        delivered = await feed.wait_for(len(hub.published(symbol)), "at the end")
        assert delivered == hub.published(symbol), "the stream changed or reordered updates"
        assert feed.got == delivered, "the stream delivered updates the venue never published"
    finally:
        await feed.close()

    return await outcome(sim, journal, engine, symbol, len(feed.got), started)


async def outcome(
    sim: SimulatedExchange,
    journal: Journal,
    engine: SymbolEngine,
    symbol: str,
    updates: int,
    started: float,
) -> Outcome:
    """What a run ended with, venue-assigned ids left out (see `Outcome`)."""
    positions = await sim.fetch_positions([symbol])
    return Outcome(
        fills=journal.fills(symbol),
        orders=[replace(o, exchange_id="") for o in journal.orders(symbol)],
        totals=engine.pm.totals,
        journal_totals=journal.load(symbol).totals,
        inventory=engine.pm.inventory_qty(),
        balances={a: (b.free, b.locked) for a, b in (await sim.fetch_balances()).items()},
        positions={s: p.qty for s, p in positions.items()},
        venue_fills=[
            replace(f, trade_id="", exchange_id="") for f in await sim.fetch_fills(symbol, 0)
        ],
        open_orders=sorted(
            (o.client_id, o.side.value, o.price, o.qty, o.status.value)
            for o in await sim.fetch_open_orders(symbol)
        ),
        invariants=check_invariants(journal, sim, symbol, STRATEGY),
        updates=updates,
        seconds=time.perf_counter() - started,
    )


async def direct(tmp: Path, symbol: str, params: GridParams, path: list[D]) -> Outcome:
    sim, hub, clock = venue()
    journal = Journal(tmp / "direct.db")
    try:
        return await trade(sim, sim, hub, clock, journal, symbol, params, path)
    finally:
        journal.close()
        await sim.close()


async def remote(tmp: Path, symbol: str, params: GridParams, path: list[D]) -> Outcome:
    sim, hub, clock = venue()
    journal = Journal(tmp / "remote.db")
    try:
        async with serve(sim) as client:
            return await trade(client, sim, hub, clock, journal, symbol, params, path)
    finally:
        journal.close()
        await sim.close()


@pytest.mark.parametrize(
    ("symbol", "mode"),
    [("BTCUSDT", "long"), ("BTCUSDT-PERP", "neutral")],
    ids=["spot-long", "perp-neutral"],
)
def test_engine_through_the_connector_trades_exactly_like_the_engine_in_process(
    tmp_path: Path, symbol: str, mode: str
) -> None:
    path = price_path()
    params = grid(mode)

    async def both() -> tuple[Outcome, Outcome]:
        return (
            await direct(tmp_path, symbol, params, path),
            await remote(tmp_path, symbol, params, path),
        )

    here, there = run(both())

    # non-trivial: many fills both ways, closed round trips, PnL that moved
    sides = {f.side for f in here.fills}
    assert len(here.fills) >= 20 and sides == {Side.BUY, Side.SELL}, (len(here.fills), sides)
    assert here.totals.round_trips >= 10 and here.totals.realized_pnl != 0
    assert here.updates > len(here.fills)  # echoes of placements and cancels were delivered too

    # identical: the remote run reached exactly what the in-process run did
    assert there.fills == here.fills
    assert there.orders == here.orders
    assert there.totals == here.totals == here.journal_totals == there.journal_totals
    assert there.inventory == here.inventory == here.invariants["inventory"]
    assert there.invariants == here.invariants
    assert there.balances == here.balances
    assert there.positions == here.positions
    assert there.venue_fills == here.venue_fills
    assert there.open_orders == here.open_orders
    assert there.updates == here.updates
    print(  # shown with -s: the numbers the two runs agree on
        f"\n{symbol} {mode}: {len(here.fills)} fills, {here.totals.round_trips} round trips, "
        f"realized {here.totals.realized_pnl}, fees {here.totals.fees}, inventory "
        f"{here.inventory}, {here.updates} updates; direct {here.seconds:.2f}s, "
        f"remote {there.seconds:.2f}s"
    )
