"""A user-stream fault through the production fan-out: ConnectorService over CcxtExchange ->
ccxt -> the Binance-dialect emulator, delivering to a SymbolService.

The emulator closes the user-data socket at the next update, losing that update (a fill). The
service must notice, resubscribe (`reconnects`), send the route a `resync` delivery, and the
symbol's reconcile gap-fills the fill over REST: no fill is lost and the journal matches the
venue.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderStatus
from mm.engine.clock import SystemClock
from mm.engine.connector_service import ConnectorService
from mm.engine.symbol_engine import EngineConfig
from mm.engine.symbol_service import SymbolService
from mm.store.journal import Journal
from tests.ccxt.rig import binance_client, emulator
from tests.helpers import check_invariants, eventually, grid, run

pytestmark = pytest.mark.slow

SYMBOL = "BTCUSDT"
TIMEOUT_S = 20.0


async def trade_through_a_closed_socket(tmp_path: Any) -> dict[str, Any]:
    clock = SystemClock()
    sim = SimulatedExchange(
        SimConfig(balances={"USDT": D(1_000_000)}, start_prices={SYMBOL: D("10000")}), clock
    )
    journal = Journal(tmp_path / "connector.db")
    tape = {"price": D("10000")}

    async def ticking() -> None:  # a live market: the last price is published every 50 ms
        while True:
            sim.set_price(SYMBOL, tape["price"])
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(ticking())
    try:
        async with emulator(sim) as (emu, port):
            # the order stream's watchdog is long: only the closed socket breaks it
            exchange = binance_client(port, stale_after_s=5.0, order_stale_after_s=60.0)
            connector = ConnectorService(exchange, backoff_s=(0.05, 0.2))
            service = SymbolService(
                EngineConfig(SYMBOL, grid()), exchange, journal, clock, reconcile_every_s=3600
            )
            engine = service.engine
            try:
                await service.start()
                connector.add_route(SYMBOL, service.deliver)
                connector.start()
                await eventually(
                    lambda: (
                        engine.state.value == "QUOTING"
                        and sum(o.status is OrderStatus.OPEN for o in sim.orders(SYMBOL)) >= 3
                        and all(o.status is OrderStatus.OPEN for o in engine.pm.live_orders())
                    ),
                    TIMEOUT_S,
                    "the grid to rest on the venue",
                )
                await eventually(lambda: emu._users != [], TIMEOUT_S, "the user stream")
                breaks, resyncs = connector.reconnects, service.resyncs
                emu.faults.close_sockets = 1  # the next update closes it and is lost with it
                tape["price"] = D("9900")
                sim.set_price(SYMBOL, D("9900"))  # fills the buy at 9900 as the socket closes
                filled = [o for o in sim.orders(SYMBOL) if o.status is OrderStatus.FILLED]
                assert len(filled) == 1, "the move should fill exactly one resting buy"
                await eventually(lambda: connector.reconnects > breaks, TIMEOUT_S, "the break")
                await eventually(lambda: service.resyncs > resyncs, TIMEOUT_S, "a resync")
                cid = filled[0].client_id
                await eventually(
                    lambda: any(f.client_id == cid for f in journal.fills(SYMBOL)),
                    TIMEOUT_S,
                    "the lost fill to be gap-filled over REST",
                )
                # trading goes on over the new subscription: the close sells what was bought
                await eventually(lambda: engine.pm.inventory_qty() > 0, TIMEOUT_S, "inventory")
                tape["price"] = D("10000")
                await eventually(
                    lambda: engine.pm.inventory_qty() == 0, TIMEOUT_S, "the close to fill"
                )
                stats = connector.stats()
                await connector.close()
                engine.halt("test finished")
                await eventually(lambda: not engine._lock.locked(), TIMEOUT_S, "an idle engine")
                await engine.reconcile()
                numbers = check_invariants(journal, sim, SYMBOL, "t1")
                numbers.update(
                    reconnects=stats["reconnects"],
                    resyncs=service.resyncs - resyncs,
                    halted=stats["halted"],
                )
                return numbers
            finally:
                await connector.close()
                await exchange.close()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await sim.close()


def test_a_closed_user_socket_resubscribes_resyncs_the_route_and_loses_no_fill(tmp_path):
    numbers = run(trade_through_a_closed_socket(tmp_path))
    assert numbers["reconnects"] >= 1 and numbers["resyncs"] >= 1
    assert numbers["halted"] is None
    assert numbers["fills"] >= 2 and numbers["inventory"] == 0
