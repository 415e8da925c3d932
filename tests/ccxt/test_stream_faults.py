"""Stream faults at the emulator, seen through the real ccxt client and CcxtExchange.

A SymbolEngine trades BTCUSDT through CcxtExchange -> ccxt -> the Binance-dialect emulator. The
emulator then breaks the user-data stream the way real venues do: it closes the socket (losing
the update in flight), or keeps it open and silent, or closes it and then also drops the first
order update sent on the new subscription. Each time the connector must notice (a
closed socket raises; a silent one trips the liveness watchdog), the runner resubscribes and
gap-fills over REST, and in the end no fill is lost: the journal matches the venue fill for
fill and in inventory.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderStatus
from mm.engine.clock import SystemClock
from mm.engine.runner import SymbolRunner
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.store.journal import Journal
from tests.ccxt.rig import KEY, SECRET, binance_client
from tests.helpers import check_invariants, eventually, grid, run

pytestmark = pytest.mark.slow


async def trade_through_faults(tmp_path: Any, fault: str, market: str) -> dict[str, Any]:
    from connectors.emulator.binance import BinanceEmulator
    from connectors.emulator.server import running

    symbol = "BTCUSDT-PERP" if market == "linear" else "BTCUSDT"
    clock = SystemClock()
    sim = SimulatedExchange(
        SimConfig(balances={"USDT": D(1_000_000)}, start_prices={"BTCUSDT": D("10000")}), clock
    )
    emu = BinanceEmulator(sim, KEY, SECRET)
    journal = Journal(tmp_path / f"{fault}-{market}.db")
    async with running(emu) as port:
        # no order update for 1.5 s: the stream counts as dead
        exchange = binance_client(port, market, stale_after_s=5.0, order_stale_after_s=1.5)
        engine = SymbolEngine(EngineConfig(symbol, grid()), exchange, journal, clock)
        runner = SymbolRunner(
            engine, exchange, clock, reconcile_every_s=3600, backoff_s=(0.05, 0.2)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        tape = {"price": D("10000")}

        async def ticking() -> None:  # a live market: the last price is published every 50 ms
            while True:
                sim.set_price(symbol, tape["price"])
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(ticking())
        try:
            await eventually(lambda: engine.state.value == "QUOTING", 20, "recovery")
            await eventually(
                lambda: (
                    sum(o.status is OrderStatus.OPEN for o in sim.orders(symbol)) >= 3
                    and all(o.status is OrderStatus.OPEN for o in engine.pm.live_orders())
                ),
                20,
                "the grid to rest on the venue",
            )
            users = emu._futures_users if market == "linear" else emu._users
            await eventually(lambda: users != [], 20, "the user stream")
            breaks = runner.reconnects
            if fault == "closed":
                emu.faults.close_sockets = 1  # the next update closes it and is lost with it
            elif fault == "dropped":
                emu.faults.close_sockets = 1
                emu.faults.drop_user_events = 1  # and the first update after reconnecting
            else:
                emu.faults.silence = True  # open, but nothing more arrives
            tape["price"] = D("9900")
            sim.set_price(symbol, D("9900"))  # fills the buy at 9900 while the stream is broken
            filled = [o for o in sim.orders(symbol) if o.status is OrderStatus.FILLED]
            assert len(filled) == 1, "the move should fill exactly one resting buy"
            await eventually(lambda: runner.reconnects > breaks, 20, "the break to be noticed")
            emu.faults.silence = False
            cid = filled[0].client_id
            await eventually(
                lambda: any(f.client_id == cid for f in journal.fills(symbol)),
                20,
                "the lost fill to be gap-filled over REST",
            )
            # trading goes on over the new subscription: the close sells what was bought
            await eventually(lambda: engine.pm.inventory_qty() > 0, 20, "inventory")
            tape["price"] = D("10000")
            await eventually(lambda: engine.pm.inventory_qty() == 0, 20, "the close to fill")
            stop.set()
            await asyncio.wait_for(task, 20)
            engine.halt("test finished")
            await eventually(lambda: not engine._lock.locked(), 20, "the engine to be idle")
            await engine.reconcile()
            numbers = check_invariants(journal, sim, symbol, "t1")
            numbers["reconnects"] = runner.reconnects
            numbers["left_to_drop"] = emu.faults.drop_user_events
            return numbers
        finally:
            stop.set()
            ticker.cancel()
            await exchange.close()
            await sim.close()


@pytest.mark.parametrize("market", ["spot", "linear"])
@pytest.mark.parametrize("fault", ["closed", "silent", "dropped"])
def test_a_broken_user_stream_is_noticed_gap_filled_and_loses_no_fill(tmp_path, fault, market):
    numbers = run(trade_through_faults(tmp_path, fault, market))
    assert numbers["reconnects"] >= 1
    assert numbers["fills"] >= 2 and numbers["inventory"] == 0
    assert numbers["left_to_drop"] == 0  # "dropped": an update after the reconnect was lost too
