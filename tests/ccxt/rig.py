"""CcxtExchange wired to the Binance-dialect emulator on 127.0.0.1 around any simulated venue."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange
from connectors.emulator.binance import BinanceEmulator
from connectors.emulator.server import running
from connectors.simulated.exchange import SimulatedExchange

KEY = "emulator-test-key-0001"
SECRET = "emulator-test-secret-0001"


@contextlib.asynccontextmanager
async def emulator(sim: SimulatedExchange) -> AsyncIterator[tuple[BinanceEmulator, int]]:
    emu = BinanceEmulator(sim, KEY, SECRET)
    async with running(emu) as port:
        yield emu, port


def binance_client(
    port: int, market: str = "spot", *, credentials: bool = True, **config: Any
) -> CcxtExchange:
    """A CcxtExchange for binance (spot, or linear: USD-M perpetuals) whose every URL points at
    the emulator on `port` (with the emulator's key and secret unless `credentials` is False)."""
    if credentials:
        config = {"api_key": KEY, "api_secret": SECRET, **config}
    return CcxtExchange(
        CcxtConfig(
            venue="binance",
            market=market,
            http_base=f"http://127.0.0.1:{port}",
            ws_base=f"ws://127.0.0.1:{port}",
            loopback_only=True,
            **config,
        )
    )


@contextlib.asynccontextmanager
async def ccxt_binance(
    sim: SimulatedExchange, market: str = "spot", **config: Any
) -> AsyncIterator[CcxtExchange]:
    """A CcxtExchange for binance (spot, or linear: USD-M perpetuals) whose every URL points at
    an emulator of `sim`."""
    async with emulator(sim) as (_, port):
        exchange = binance_client(port, market, **config)
        try:
            symbols = ["BTCUSDT", "ETHUSDT"]
            if market == "linear":
                symbols = [s + "-PERP" for s in symbols]
            await exchange.load_markets(symbols)
            yield exchange
        finally:
            await exchange.close()
