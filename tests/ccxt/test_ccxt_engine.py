"""The engine through ccxt trades exactly like the engine in process.

Proven here: a SymbolEngine trading spot BTCUSDT (long grid) through CcxtExchange -> the real
ccxt binance client -> the Binance-dialect emulator on 127.0.0.1 -> SimulatedExchange reaches the
same journal fills, realized PnL, fees, inventory and venue balances as the same engine trading
the SimulatedExchange directly, on the same seeded price path. `tests.remote.test_remote_engine`
proves the same for the gRPC connector; its price path, recording hub, venue setup and outcome
are reused.

Both runs go through ONE driver (`trade`), which differs only in the exchange the engine talks
to. Each path point follows the backtest's order: the venue's clock advances and the market
moves (`set_price` on the venue), the engine gets the order updates, then the tick. The updates
come from the engine's own `stream_orders` subscription — through ccxt's `watch_orders` and the
emulator's user-data WebSocket in the ccxt run — never from `set_price`'s return value.

Unlike gRPC, this wire does not carry the venue's updates one for one: the emulator turns one
update into one executionReport per trade (or one for a status change), and ccxt's order cache
may coalesce several into the order's latest state or hand the same order out again. So the
driver does not count messages: it polls (no fixed sleeps, bounded) until, for every client id
the recording hub saw, the latest streamed (status, filled qty) equals the latest the venue
published. At the end every streamed report must be a state the venue published for that order,
in the venue's order (repeats allowed), and its cumulative fee the venue's.

A second case runs a venue that fills a crossing order half at a time, so orders trade more than
once and some placements trade on arrival: it pins the fee accounting (a trade at placement is
charged, and an order's second trade does not count the first one's fee again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.grid import GridParams
from mm.core.model import OrderReport, OrderStatus, PriceTick, Side
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, EngineState, SymbolEngine
from mm.ports import Exchange
from mm.store.journal import Journal
from tests.ccxt.rig import ccxt_binance
from tests.helpers import T0, eventually, grid, run
from tests.remote.test_remote_engine import (
    RECONCILE_EVERY,
    SEED,
    START,
    STEP_MS,
    Outcome,
    RecordingHub,
    outcome,
    price_path,
)

pytestmark = pytest.mark.slow
SYMBOL = "BTCUSDT"
POINTS = 150
SETTLE_S = 15.0  # the most one point may wait for the stream to catch up with the venue


State = tuple[OrderStatus, D]  # what an order update says: (status, cumulative filled qty)


def venue(partial_fill_ratio: D) -> tuple[SimulatedExchange, RecordingHub, VirtualClock]:
    """A fresh venue as in the gRPC test (`tests.remote.test_remote_engine.venue`), filling each
    crossing order by `partial_fill_ratio` of its size at a time."""
    clock = VirtualClock(T0)
    config = SimConfig(
        balances={"USDT": D(1_000_000)},
        start_prices={SYMBOL: START},
        maker_fee_rate=D("0.001"),
        taker_fee_rate=D("0.002"),
        partial_fill_ratio=partial_fill_ratio,
    )
    sim = SimulatedExchange(config, clock)
    hub = RecordingHub(sim.faults)
    sim.hub = hub  # before anyone subscribes
    return sim, hub, clock


def state(report: OrderReport) -> State:
    return report.status, report.filled_qty


def latest(reports: list[OrderReport]) -> dict[str, State]:
    """Each order's newest state among `reports` (client id -> (status, filled qty))."""
    return {r.client_id: state(r) for r in reports}


class Feed:
    """Everything an order stream delivers, appended to `got` by a background reader, with each
    order's newest state kept up to date for the driver's polling."""

    def __init__(self, stream: AsyncIterator[OrderReport]) -> None:
        self.got: list[OrderReport] = []
        self.newest: dict[str, State] = {}
        self._task = asyncio.get_running_loop().create_task(self._read(stream), name="feed")

    async def _read(self, stream: AsyncIterator[OrderReport]) -> None:
        async for report in stream:
            self.got.append(report)
            self.newest[report.client_id] = state(report)

    async def settle(self, published: dict[str, State], what: str) -> int:
        """Wait until every order's newest streamed state is the venue's newest published one;
        returns how many reports have been delivered by then."""

        def behind() -> list[str]:
            return [c for c, s in published.items() if self.newest.get(c) != s]

        try:
            await eventually(
                lambda: not behind() or self._task.done(),
                timeout_s=SETTLE_S,
                what=f"the order stream to catch up {what}",
            )
        except AssertionError as e:
            late = {c: (self.newest.get(c), published[c]) for c in behind()[:3]}
            raise AssertionError(f"{e}; (streamed, venue) of orders behind: {late}") from None
        if behind():
            raise AssertionError(f"the order stream ended {what}") from self._task.exception()
        return len(self.got)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def check_delivery(published: list[OrderReport], delivered: list[OrderReport]) -> None:
    """Every delivered report is a state the venue published for that order, in the venue's
    order (a state may repeat, intermediate ones may be skipped), and every order's last delivered
    report carries the venue's last state and cumulative fee."""
    by_order: dict[str, list[State]] = {}
    for report in published:
        by_order.setdefault(report.client_id, []).append(state(report))
    at: dict[str, int] = {}
    for report in delivered:
        states = by_order.get(report.client_id)
        assert states is not None, f"{report.client_id}: streamed but never published"
        start = at.get(report.client_id, 0)
        try:
            at[report.client_id] = states.index(state(report), start)
        except ValueError:
            raise AssertionError(
                f"{report.client_id}: streamed {state(report)} after the venue's "
                f"{states[start]} (venue: {states})"
            ) from None
    last_published = {r.client_id: r for r in published}
    last_delivered = {r.client_id: r for r in delivered}
    assert last_delivered.keys() == last_published.keys()
    for client_id, report in last_published.items():
        got = last_delivered[client_id]
        assert state(got) == state(report), client_id
        assert got.fee == report.fee, f"{client_id}: streamed fee {got.fee}, venue {report.fee}"


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
    """The one driver of both runs: only `exchange` (the venue itself or a CcxtExchange talking
    to an emulator of it) differs."""
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
            # with the echoes of earlier placements and cancels
            delivered = await feed.settle(latest(hub.published(symbol)), f"at point {i}")
            updates = feed.got[applied:delivered]
            applied = delivered
            if engine.last_tick is not None:
                engine.note_price(tick)
            for report in updates:
                await engine.on_order_report(report)
            await engine.on_tick(tick)
            if i % RECONCILE_EVERY == RECONCILE_EVERY - 1:
                await engine.reconcile()
            assert engine.state is EngineState.QUOTING, f"point {i}: {engine.halt_reason}"
        await feed.settle(latest(hub.published(symbol)), "at the end")
        check_delivery(hub.published(symbol), feed.got)
    finally:
        await feed.close()

    return await outcome(sim, journal, engine, symbol, len(feed.got), started)


async def direct(tmp: Path, ratio: D, params: GridParams, path: list[D]) -> Outcome:
    sim, hub, clock = venue(ratio)
    journal = Journal(tmp / "direct.db")
    try:
        return await trade(sim, sim, hub, clock, journal, SYMBOL, params, path)
    finally:
        journal.close()
        await sim.close()


async def through_ccxt(
    tmp: Path, ratio: D, params: GridParams, path: list[D]
) -> tuple[Outcome, int]:
    """The ccxt run's outcome and how many order updates the venue published in it."""
    sim, hub, clock = venue(ratio)
    journal = Journal(tmp / "ccxt.db")
    try:
        async with ccxt_binance(sim) as exchange:
            outcome = await trade(exchange, sim, hub, clock, journal, SYMBOL, params, path)
        return outcome, len(hub.published(SYMBOL))
    finally:
        journal.close()
        await sim.close()


@pytest.mark.parametrize(
    "ratio",
    [
        D(1),
        D("0.5"),
    ],
    ids=["full-fills", "half-fills"],
)
def test_engine_through_ccxt_trades_exactly_like_the_engine_in_process(
    tmp_path: Path, ratio: D
) -> None:
    path = price_path(SEED, POINTS)
    params = grid("long")

    async def both() -> tuple[Outcome, Outcome, int]:
        here = await direct(tmp_path, ratio, params, path)
        there, published = await through_ccxt(tmp_path, ratio, params, path)
        return here, there, published

    here, there, published = run(both())

    # non-trivial: many fills both ways, closed round trips, PnL that moved
    sides = {f.side for f in here.fills}
    assert len(here.fills) >= 20 and sides == {Side.BUY, Side.SELL}, (len(here.fills), sides)
    assert here.totals.round_trips >= 10 and here.totals.realized_pnl != 0
    assert here.updates > len(here.fills)  # echoes of placements and cancels were delivered too

    # identical: the ccxt run reached exactly what the in-process run did
    assert there.fills == here.fills
    assert there.orders == here.orders
    assert there.totals == here.totals == here.journal_totals == there.journal_totals
    assert there.inventory == here.inventory == here.invariants["inventory"]
    assert there.invariants == here.invariants
    assert there.balances == here.balances
    assert there.positions == here.positions
    assert there.venue_fills == here.venue_fills
    assert there.open_orders == here.open_orders
    assert published == here.updates  # the venue published the same updates in both runs
    print(  # shown with -s: the numbers the two runs agree on
        f"\n{SYMBOL} long, fill ratio {ratio}: {len(here.fills)} fills, "
        f"{here.totals.round_trips} round trips, realized {here.totals.realized_pnl}, fees "
        f"{here.totals.fees}, inventory "
        f"{here.inventory}; {here.updates} updates published, {there.updates} streamed by "
        f"ccxt; direct {here.seconds:.2f}s, ccxt {there.seconds:.2f}s"
    )
