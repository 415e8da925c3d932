"""Bursts of price and order updates — duplicated, reordered, dropped — through the live runner."""

import asyncio
import random
from decimal import Decimal as D

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.faults import FaultConfig
from mm.engine.clock import SystemClock
from mm.engine.runner import SymbolRunner
from tests.helpers import check_invariants, eventually, grid, make_rig, run

YIELD = 0  # one turn of the event loop


def test_bursts_with_duplicated_reordered_and_dropped_updates_end_consistent():
    async def scenario():
        clock = SystemClock()
        faults = FaultConfig(
            duplicate_update_rate=0.25, reorder_update_rate=0.25, drop_update_rate=0.05, seed=7
        )
        sim = SimulatedExchange(
            SimConfig(
                balances={"USDT": D(1_000_000)}, start_prices={"BTCUSDT": D("10000")}, faults=faults
            ),
            clock,
        )
        rig = make_rig(
            grid("neutral", interval=D("10"), buy_levels=5, sell_levels=5, max_open_orders=20),
            symbol="BTCUSDT-PERP",
            venue=sim,
            clock=clock,
        )
        runner = SymbolRunner(rig.engine, sim, clock, reconcile_every_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await eventually(lambda: rig.engine.state.value == "QUOTING", what="engine quoting")
        sim.set_price(rig.symbol, D("10000"))
        await eventually(lambda: len(rig.engine.pm.live_orders()) == 10, what="grid placed")
        rng = random.Random(3)
        price = D("10000")
        for burst in range(80):
            for _ in range(rng.randint(5, 40)):  # a burst: many ticks, no chance to process
                price += D(rng.randint(-12, 12))
                sim.set_price(rig.symbol, price)
            await asyncio.sleep(YIELD)  # let the runner take part of the burst
            if burst % 8 == 0:
                await eventually(lambda: runner.ticks_processed > 0)
        stop.set()
        await task
        await rig.engine.reconcile()  # the venue is quiet now: everything is accounted for
        return rig, runner, sim

    rig, runner, sim = run(scenario())
    assert sim.faults.fired["duplicate"] > 0 and sim.faults.fired["reorder"] > 0
    assert sim.faults.fired["drop"] > 0
    assert runner.ticks_processed < runner.ticks_seen  # ticks were conflated, not queued
    assert runner.updates_processed > 0
    numbers = check_invariants(rig.journal, sim, rig.symbol, "t1")
    assert numbers["fills"] >= 10
    assert not rig.engine.halt_reason
