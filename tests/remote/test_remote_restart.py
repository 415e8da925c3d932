"""`mm connector` as its own process: a market maker trading through it survives a connector crash.

The connector runs as a real subprocess (`python -m mm.cli connector`) around a persisted
simulated venue. A SymbolEngine in this process trades through RemoteExchange. The connector
is killed with SIGKILL mid-trading and started again on the same port: the client must notice
the broken streams, reconnect, reconcile (orders placed while it was down end UNKNOWN and are
resolved by client id) and trade on - with no duplicate order and the journal matching the
venue fill for fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from connectors.remote.client import RemoteConfig, RemoteExchange
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.engine.clock import SystemClock, VirtualClock
from mm.engine.runner import SymbolRunner
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.errors import OrderNotFound
from mm.store.journal import Journal
from tests.helpers import check_invariants, eventually, grid, run
from tests.remote.rig import connector_process, free_port, write_connector_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTCUSDT"


async def serving(client: RemoteExchange) -> bool:
    return (await client.check_health()).ok


def test_killing_and_restarting_the_connector_loses_and_duplicates_nothing(tmp_path):
    config = write_connector_config(tmp_path, free_port())
    log = tmp_path / "connector.log"
    journal = Journal(tmp_path / "journal.db")
    params = grid(interval=D("100"), buy_levels=3, sell_levels=3, level_qty=D("0.01"))

    async def wait_healthy(client: RemoteExchange) -> None:
        for _ in range(300):
            if await serving(client):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"connector not healthy; log:\n{log.read_text()}")

    async def scenario() -> dict[str, int]:
        clock = SystemClock()
        address = f"127.0.0.1:{yaml.safe_load(config.read_text())['port']}"
        client = RemoteExchange(RemoteConfig(address, reconnect_backoff_s=(0.05, 0.5)))
        engine = SymbolEngine(EngineConfig(SYMBOL, params), client, journal, clock)
        runner = SymbolRunner(engine, client, clock, reconcile_every_s=0.5, backoff_s=(0.05, 0.5))
        stop = asyncio.Event()
        counts = {}
        try:
            with connector_process(config, log) as first:
                await wait_healthy(client)
                task = asyncio.create_task(runner.run(stop))
                await eventually(lambda: len(journal.fills(SYMBOL)) >= 3, 60, "fills")
                first.send_signal(signal.SIGKILL)  # mid-trading, no goodbye
                first.wait(10)
            counts["fills_before"] = len(journal.fills(SYMBOL))
            await eventually(lambda: runner.reconnects >= 1, 20, "the break to be noticed")
            with connector_process(config, log):
                await wait_healthy(client)
                before = len(journal.fills(SYMBOL))
                await eventually(lambda: len(journal.fills(SYMBOL)) >= before + 3, 60, "fills")
                await eventually(lambda: engine.state.value == "QUOTING", 20, "quoting again")
                stop.set()
                await asyncio.wait_for(task, 20)
                assert not engine.halt_reason, engine.halt_reason
                # a decision already under way finishes (the runner never cuts one short), so
                # halt first and wait for the engine to be idle: nothing new is placed after
                engine.halt("test finished")
                await eventually(lambda: not engine._lock.locked(), 20, "the engine to be idle")
                # the venue trades on: cancel what rests so nothing fills after the last look
                for order in await client.fetch_open_orders(SYMBOL):
                    with contextlib.suppress(OrderNotFound):
                        await client.cancel_order(SYMBOL, order.client_id)
                await engine.reconcile()  # learns the cancels (and any last fills)
                counts["unknown_after"] = sum(
                    o.status.value == "UNKNOWN" for o in engine.pm.live_orders()
                )
                counts["reconnects"] = runner.reconnects
        finally:
            stop.set()
            await client.close()
        counts["fills_after"] = len(journal.fills(SYMBOL))
        return counts

    counts = run(scenario())
    assert counts["fills_after"] >= counts["fills_before"] + 3
    assert counts["unknown_after"] == 0
    # the venue as the connector left it (SIGTERM saves it): at most one live order per slot,
    # every live order journaled, and the journal agrees with it fill for fill and in inventory
    venue = SimulatedExchange(
        SimConfig(persist_path=tmp_path / "connector" / "venue.json"), VirtualClock(0)
    )
    numbers = check_invariants(journal, venue, SYMBOL, "t1")
    assert numbers["fills"] == counts["fills_after"]
    assert counts["reconnects"] >= 1
    printed = log.read_text()
    assert printed.count("exchange simulated is healthy (SERVING)") == 2, printed
    assert printed.count("mm connector: stopped") == 1  # the SIGKILLed one never said goodbye
