"""Tick -> decision latency and throughput, in process (no network, no sleeping).

Four measurements on a 40-level Neutral grid (20 buy + 20 sell levels), BTC-like prices:
  core/quiet    GridStrategy.decide on a settled grid, prices moving within a level: no change
  core/churn    every tick moves the centre by one level: decide + apply to the PositionManager
  engine/quiet  SymbolEngine.on_tick with the in-memory journal and simulated venue, no change
  engine/churn  SymbolEngine.on_tick moving a level per tick: journal, venue, cancels/places
Usage: python scripts/bench_core.py [--ticks N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from decimal import Decimal as D
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.commands import PlaceOrder
from mm.core.grid import GridMode, GridParams, GridStrategy
from mm.core.model import MarketRules, MarketType, OrderReport, OrderStatus, PriceTick
from mm.core.position import PositionManager
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.store.journal import Journal
from scripts.machine import describe

PARAMS = GridParams("bench", GridMode.NEUTRAL, D("325.00"), 20, 20, 60, level_notional=D("100"))
RULES = MarketRules(
    "BTCUSDT-PERP", "BTC", "USDT", MarketType.LINEAR, D("0.01"), D("0.00001"), D("0.00001"), D("5")
)
ANCHOR = D("65000.00")


def report(name: str, samples_ns: list[int]) -> None:
    samples_ns.sort()
    n = len(samples_ns)
    total_s = sum(samples_ns) / 1e9
    p50 = samples_ns[n // 2] / 1000
    p99 = samples_ns[int(n * 0.99)] / 1000
    print(
        f"{name:<14} {n / total_s:>11,.0f} ticks/s   p50 {p50:8.2f} us   p99 {p99:8.2f} us"
        f"   mean {statistics.fmean(samples_ns) / 1000:8.2f} us"
    )


def apply(pm: PositionManager, commands: list) -> None:
    for c in commands:
        if isinstance(c, PlaceOrder):
            pm.record_intent(c, 0)
            pm.apply_report(
                OrderReport(c.symbol, c.client_id, c.side, c.price, c.qty, OrderStatus.OPEN)
            )
        else:
            o = pm.order(c.client_id)
            pm.apply_report(
                OrderReport(c.symbol, o.client_id, o.side, o.price, o.qty, OrderStatus.CANCELED)
            )
    pm.take_changes()


def core(ticks: int) -> None:
    strategy, pm = GridStrategy(PARAMS, RULES, ANCHOR), PositionManager(RULES.symbol)
    apply(pm, strategy.decide(pm.snapshot(), ANCHOR, now_ms=0))
    quiet = [ANCHOR + D(i % 200) - 100 for i in range(ticks)]  # within +-100 of the centre
    samples = []
    clock = time.perf_counter_ns
    for price in quiet:
        t = clock()
        snapshot = pm.snapshot()
        commands = strategy.decide(snapshot, price, now_ms=0)
        samples.append(clock() - t)
        assert not commands
    report("core/quiet", samples)
    samples = []
    for i in range(ticks // 20):
        price = ANCHOR + (PARAMS.interval * 4 if i % 2 else 0)  # jump 4 levels and back
        t = clock()
        commands = strategy.decide(pm.snapshot(), price, now_ms=0)
        apply(pm, commands)
        samples.append(clock() - t)
    report("core/churn", samples)


async def engine(ticks: int) -> None:
    clock = VirtualClock(1_700_000_000_000)
    venue = SimulatedExchange(
        SimConfig(balances={"USDT": D(10**7)}, start_prices={"BTCUSDT": ANCHOR}), clock
    )
    eng = SymbolEngine(EngineConfig("BTCUSDT-PERP", PARAMS), venue, Journal(":memory:"), clock)
    await eng.start()
    await eng.on_tick(PriceTick("BTCUSDT-PERP", ANCHOR, clock.now_ms()))
    counter = time.perf_counter_ns
    samples = []
    for i in range(ticks):
        tick = PriceTick("BTCUSDT-PERP", ANCHOR + D(i % 200) - 100, clock.now_ms())
        t = counter()
        await eng.on_tick(tick)
        samples.append(counter() - t)
    report("engine/quiet", samples)
    samples = []
    for i in range(ticks // 20):
        clock.advance(1000)
        price = ANCHOR + (PARAMS.interval * 4 if i % 2 else 0)
        venue._last["BTCUSDT"] = int(price / D("0.01"))  # move the venue without fills
        tick = PriceTick("BTCUSDT-PERP", price, clock.now_ms())
        t = counter()
        await eng.on_tick(tick)
        samples.append(counter() - t)
    report("engine/churn", samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(
        f"grid: neutral, 20 buy + 20 sell levels, interval {PARAMS.interval}, "
        f"{args.ticks:,} quiet ticks, {args.ticks // 20:,} churn ticks"
    )
    core(args.ticks)
    asyncio.run(engine(args.ticks))


if __name__ == "__main__":
    main()
