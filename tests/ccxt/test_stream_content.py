"""What CcxtExchange's kline and account streams carry, against the Binance-dialect emulator:
a candle of the subscribed symbol and interval whose Decimal OHLCV is the simulated venue's own
candle, and after a fill the account's balances (spot) or position (linear) as the venue holds
them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from connectors.ccxt.exchange import CcxtExchange
from connectors.emulator.binance import BinanceEmulator
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import Balance, Candle, OrderRequest, Position, Side
from mm.engine.clock import VirtualClock
from tests.ccxt.rig import binance_client, emulator
from tests.helpers import eventually

TIMEOUT_S = 10.0
MARKETS = ["spot", "linear"]
T0 = 1_700_000_000_000


def symbol_of(market: str) -> str:
    return "BTCUSDT-PERP" if market == "linear" else "BTCUSDT"


@contextlib.asynccontextmanager
async def binance_on(market: str) -> AsyncIterator[tuple[SimulatedExchange, Any, CcxtExchange]]:
    """A simulated venue at 10000 (USDT only), its emulator and a CcxtExchange on it."""
    sim = SimulatedExchange(
        SimConfig(balances={"USDT": D(100_000)}, start_prices={"BTCUSDT": D("10000")}),
        VirtualClock(T0),
    )
    try:
        async with emulator(sim) as (emu, port):
            exchange = binance_client(port, market)
            try:
                await exchange.load_markets([symbol_of(market)])
                yield sim, emu, exchange
            finally:
                await exchange.close()
    finally:
        await sim.close()


@contextlib.asynccontextmanager
async def collecting(stream: AsyncIterator[Any]) -> AsyncIterator[list[Any]]:
    """Everything the stream yields, appended in the background while the block runs; the
    stream must not have failed meanwhile."""
    items: list[Any] = []

    async def read() -> None:
        async for item in stream:
            items.append(item)

    task = asyncio.create_task(read())
    try:
        yield items
        assert not task.done(), task.exception()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]


def subscribed(emu: BinanceEmulator, stream: str) -> bool:
    return any(stream in streams for _family, streams, _queue in emu._markets)


@pytest.mark.parametrize("market", MARKETS)
def test_the_kline_stream_carries_the_venues_candle_for_the_symbol_and_interval(market) -> None:
    async def scenario() -> None:
        symbol = symbol_of(market)
        async with (
            binance_on(market) as (sim, emu, exchange),
            collecting(exchange.stream_klines(symbol, "1m")) as candles,
        ):
            await eventually(lambda: subscribed(emu, "btcusdt@kline_1m"), TIMEOUT_S, "sub")
            for price in ("10100", "9950", "10050"):  # one minute: open, high, low, close
                sim.set_price(symbol, D(price))
            start = T0 - T0 % 60_000
            want = Candle(start, D("10000"), D("10100"), D("9950"), D("10050"), D(0))
            assert await sim.fetch_klines(symbol, "1m", None, 1) == [want]
            await eventually(lambda: candles[-1:] == [want], TIMEOUT_S, "the venue's candle")
            last = candles[-1]
            assert all(isinstance(v, D) for v in (last.open, last.high, last.low, last.close))
            assert all(c.ts_ms == start for c in candles)

    asyncio.run(scenario())


@pytest.mark.parametrize("market", MARKETS)
def test_the_account_stream_carries_the_balances_or_position_after_a_fill(market) -> None:
    """A resting buy fills at 9900: the update that follows has the venue's balances (spot:
    0.01 BTC bought, USDT less cost and fee; linear: the USDT wallet less the fee) and, for the
    perpetual, the long position at its entry price."""

    async def scenario() -> None:
        symbol = symbol_of(market)
        async with binance_on(market) as (sim, emu, exchange):
            users = emu._users if market == "spot" else emu._futures_users
            async with collecting(exchange.stream_account()) as updates:
                await eventually(lambda: users != [], TIMEOUT_S, "the user stream")
                await exchange.place_order(
                    OrderRequest(symbol, "c1", Side.BUY, D("9900"), D("0.01"))
                )
                sim.set_price(symbol, D("9900"))
                venue = await sim.fetch_balances()
                if market == "spot":
                    assert venue["BTC"] == Balance("BTC", D("0.01"), D(0))
                    assert venue["USDT"].free == D(100_000) - D(99) - D("0.0198")
                else:
                    assert venue["USDT"].free == D(100_000) - D("0.0198")
                want = {a: b for a, b in venue.items() if b.free or b.locked}

                def arrived() -> bool:
                    if not updates:
                        return False
                    last = {b.asset: b for b in updates[-1].balances if b.free or b.locked}
                    return last == want

                await eventually(arrived, TIMEOUT_S, f"balances {want}")
                positions = updates[-1].positions
                if market == "spot":
                    assert positions == ()
                else:
                    assert positions == (Position(symbol, D("0.01"), D("9900")),)
                    assert (await sim.fetch_positions([symbol]))[symbol] == positions[0]

    asyncio.run(scenario())
