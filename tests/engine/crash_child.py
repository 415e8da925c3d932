"""A real market-maker process for crash tests: live runner + persisted simulated venue.

Run as `python -m tests.engine.crash_child --dir DIR ...`. With `--crash-phase P --crash-after N`
it SIGKILLs itself the N-th time the engine reaches phase P, after writing what was in flight to
DIR/crash.json. Otherwise it trades until `--ticks` ticks were processed, stops the feed, runs a
final reconcile and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.grid import GridMode, GridParams
from mm.engine.clock import SystemClock
from mm.engine.runner import SymbolRunner
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.store.journal import Journal
from tests.helpers import POLL_S

STRATEGY = "crash"


def params(symbol: str) -> GridParams:
    mode = GridMode.NEUTRAL if symbol.endswith("-PERP") else GridMode.LONG
    return GridParams(STRATEGY, mode, D("20"), 4, 4, 16, level_qty=D("0.01"))


def venue(directory: Path, seed: int) -> SimulatedExchange:
    config = SimConfig(
        balances={"USDT": D(1_000_000)},
        start_prices={"BTCUSDT": D("10000")},
        seed=seed,
        volatility=0.002,
        tick_interval_ms=2,
        persist_path=directory / "venue.json",
    )
    return SimulatedExchange(config, SystemClock())


async def main(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    clock = SystemClock()
    sim = venue(directory, args.seed)
    journal = Journal(directory / "journal.db")
    seen: Counter[str] = Counter()
    engine: SymbolEngine

    def on_phase(name: str) -> None:
        seen[name] += 1
        if name == args.crash_phase and seen[name] == args.crash_after:
            intents = [o.client_id for o in engine.pm.live_orders() if o.status.value == "INTENT"]
            # The venue runs in this process and saves every order it accepts before answering,
            # so what it holds now is what survives the kill. A sent order can have been refused
            # (post-only: the price moved on after the engine's last tick); it never existed.
            on_venue = {o.client_id for o in sim.orders(args.symbol)}
            in_flight = {
                "phase": name,
                "intents": intents,
                "accepted": [c for c in intents if c in on_venue],
                "fills": [f.client_id for f in engine.pm._changes.fills],
            }
            (directory / "crash.json").write_text(json.dumps(in_flight))
            os.kill(os.getpid(), signal.SIGKILL)

    engine = SymbolEngine(
        EngineConfig(args.symbol, params(args.symbol)), sim, journal, clock, on_phase=on_phase
    )
    runner = SymbolRunner(engine, sim, clock, reconcile_every_s=0.25)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    sim.start()
    deadline = time.monotonic() + args.timeout_s
    while runner.ticks_processed < args.ticks and not task.done():
        if time.monotonic() > deadline:
            raise SystemExit(
                f"only {runner.ticks_processed} ticks in {args.timeout_s}s; phases {dict(seen)},"
                f" updates {runner.updates_processed}, venue fills {len(sim._fills[args.symbol])}"
            )
        await asyncio.sleep(POLL_S)
    stop.set()
    await task
    await sim.close()
    await engine.reconcile()  # the venue is frozen now: the journal catches up completely
    print(json.dumps({"ticks": runner.ticks_processed, **engine.status()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--symbol", default="BTCUSDT-PERP")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crash-phase", default="")
    parser.add_argument("--crash-after", type=int, default=1)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--timeout-s", type=float, default=60)
    asyncio.run(main(parser.parse_args()))
