"""Market-data faults at the emulator, seen through CcxtExchange's price stream: a closed
socket ends the stream as `StreamDisconnected`, a socket kept open but silent trips the
liveness watchdog; either way a new subscription gets prices again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from connectors.ccxt.exchange import CcxtExchange
from connectors.emulator.binance import BinanceEmulator
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import PriceTick
from mm.engine.clock import VirtualClock
from mm.errors import StreamDisconnected
from tests.ccxt.rig import binance_client, emulator
from tests.helpers import eventually

TIMEOUT_S = 10.0
STALE_S = 1.0  # the price watchdog: no tick this long = the stream is dead


@contextlib.asynccontextmanager
async def ticking_venue(
    market: str,
) -> AsyncIterator[tuple[BinanceEmulator, CcxtExchange, str, dict[str, D]]]:
    """An emulated venue whose last price (`tape["price"]`) is published every 20 ms, and a
    CcxtExchange on it whose price watchdog trips after `STALE_S`."""
    clock = VirtualClock(1_700_000_000_000)
    sim = SimulatedExchange(SimConfig(start_prices={"BTCUSDT": D("10000")}), clock)
    symbol = "BTCUSDT-PERP" if market == "linear" else "BTCUSDT"
    tape = {"price": D("10000")}

    async def ticking() -> None:
        while True:
            clock.advance(20)
            sim.set_price(symbol, tape["price"])
            await asyncio.sleep(0.02)

    ticker = asyncio.create_task(ticking())
    try:
        async with emulator(sim) as (emu, port):
            exchange = binance_client(port, market, credentials=False, stale_after_s=STALE_S)
            try:
                yield emu, exchange, symbol, tape
            finally:
                await exchange.close()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await sim.close()


async def read_until_broken(stream: AsyncIterator[PriceTick], ticks: list[PriceTick]) -> Exception:
    """Reads the stream into `ticks`; returns what ended it."""
    try:
        async for tick in stream:
            ticks.append(tick)
    except Exception as e:
        return e
    raise AssertionError("the price stream ended without an error")


@pytest.mark.parametrize("market", ["spot", "linear"])
@pytest.mark.parametrize("fault", ["closed", "silent"])
def test_a_broken_price_stream_is_detected_and_a_resubscription_gets_prices(
    fault: str, market: str
) -> None:
    async def scenario() -> None:
        async with ticking_venue(market) as (emu, exchange, symbol, tape):
            ticks: list[PriceTick] = []
            reader = asyncio.create_task(read_until_broken(exchange.stream_prices([symbol]), ticks))
            await eventually(lambda: len(ticks) >= 3, TIMEOUT_S, "prices before the fault")
            assert {t.symbol for t in ticks} == {symbol} and ticks[-1].price == D("10000")
            if fault == "closed":
                emu.faults.close_market_sockets = 1
            else:
                emu.faults.silence_markets = True
            error = await asyncio.wait_for(reader, TIMEOUT_S)
            assert isinstance(error, StreamDisconnected), repr(error)
            if fault == "silent":
                assert f"no message for {STALE_S}s" in str(error)
                assert emu._markets != [], "the silent socket stays open"
                emu.faults.silence_markets = False
            tape["price"] = D("10100")
            after: list[PriceTick] = []
            again = asyncio.create_task(read_until_broken(exchange.stream_prices([symbol]), after))
            try:
                await eventually(
                    lambda: any(t.price == D("10100") for t in after) or again.done(),
                    TIMEOUT_S,
                    "prices on the new subscription",
                )
                assert not again.done(), again.result()
                assert {t.symbol for t in after} == {symbol}
            finally:
                again.cancel()
                await asyncio.gather(again, return_exceptions=True)

    asyncio.run(scenario())
