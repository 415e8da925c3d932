"""A halting error on a stream ends it as itself, not as `StreamDisconnected`.

The emulator revokes the API key while the user-data stream is open: it closes the socket and
answers the next login with -2015. The connector must raise `AuthenticationError` from the
stream, so a driver stops instead of resubscribing forever: `SymbolRunner.run` ends with it,
`ConnectorService` stops its streams with an error log and says why in `halted`.
On USD-M (`linear`) the login is a listen key that ccxt caches for 20 minutes: the connector
has it asked for again at each login, so the reconnect is refused (-2015) instead of dialling
the dead key forever.
"""

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
from mm.engine.clock import SystemClock
from mm.engine.connector_service import ConnectorService
from mm.engine.runner import SymbolRunner
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.errors import AuthenticationError, StreamDisconnected
from mm.store.journal import Journal
from tests.ccxt.rig import binance_client, emulator
from tests.helpers import eventually, grid, run

TIMEOUT_S = 10.0


def venue() -> SimulatedExchange:
    config = SimConfig(balances={"USDT": D(1_000_000)}, start_prices={"BTCUSDT": D("10000")})
    return SimulatedExchange(config, SystemClock())


async def ending(stream: AsyncIterator[Any]) -> Exception:
    """Reads `stream` to its end; returns the error that ended it."""
    try:
        async for _ in stream:
            pass
    except Exception as e:
        return e
    raise AssertionError("the stream ended without an error")


@contextlib.asynccontextmanager
async def on_emulator(
    market: str = "spot",
) -> AsyncIterator[tuple[BinanceEmulator, CcxtExchange, SimulatedExchange]]:
    sim = venue()
    try:
        async with emulator(sim) as (emu, port):
            exchange = binance_client(port, market, order_stale_after_s=5.0)
            try:
                await exchange.load_markets([symbol_of(market)])
                yield emu, exchange, sim
            finally:
                await exchange.close()
    finally:
        await sim.close()


def symbol_of(market: str) -> str:
    return "BTCUSDT" if market == "spot" else "BTCUSDT-PERP"


def user_sockets(emu: BinanceEmulator, market: str) -> list[Any]:
    """The emulator's open user-data sockets: spot's WebSocket API, USD-M's listen-key sockets."""
    return emu._users if market == "spot" else emu._futures_users


@pytest.mark.parametrize("market", ["spot", "linear"])
def test_a_revoked_key_ends_the_order_stream_with_authentication_error(market: str) -> None:
    """On USD-M ccxt keeps the listen key it was given and reconnects with it: the dead key must
    not make it reconnect forever, the refused key must end the stream."""

    async def scenario() -> list[Exception]:
        async with on_emulator(market) as (emu, exchange, _):
            ends: list[Exception] = []
            for _ in range(3):  # the socket closing, then the refused login
                reader = asyncio.create_task(ending(exchange.stream_orders([symbol_of(market)])))
                if not ends:
                    opened = lambda: user_sockets(emu, market) != []  # noqa: E731
                    await eventually(opened, TIMEOUT_S, "the user stream")
                    emu.revoke_key()
                ends.append(await asyncio.wait_for(reader, TIMEOUT_S))
                if not isinstance(ends[-1], StreamDisconnected):
                    break
            return ends

    ends = run(scenario())
    assert isinstance(ends[0], StreamDisconnected), repr(ends)  # the socket the venue closed
    assert len(ends) == 2 and isinstance(ends[1], AuthenticationError), repr(ends)
    assert "Invalid API-key" in str(ends[-1])


@pytest.mark.parametrize("market", ["spot", "linear"])
def test_a_revoked_key_stops_the_symbol_runner_instead_of_reconnecting_forever(
    tmp_path, market: str
) -> None:
    async def scenario() -> tuple[BaseException | None, int]:
        async with on_emulator(market) as (emu, exchange, _):
            clock = SystemClock()
            journal = Journal(tmp_path / "revoked.db")
            config = EngineConfig(symbol_of(market), grid())
            engine = SymbolEngine(config, exchange, journal, clock)
            runner = SymbolRunner(engine, exchange, clock, backoff_s=(0.01, 0.05))
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop))
            try:
                opened = lambda: user_sockets(emu, market) != []  # noqa: E731
                await eventually(opened, TIMEOUT_S, "the user stream")
                emu.revoke_key()
                await asyncio.wait({task}, timeout=TIMEOUT_S)
                assert task.done(), "the runner is still resubscribing"
                return task.exception(), runner.reconnects
            finally:
                stop.set()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    error, reconnects = run(scenario())
    assert isinstance(error, AuthenticationError), repr(error)
    assert reconnects <= 2  # the closed socket; then the refused login halts


def test_a_revoked_key_stops_the_connector_service_with_an_error_log(caplog) -> None:
    async def scenario() -> ConnectorService:
        async with on_emulator() as (emu, exchange, _):
            service = ConnectorService(exchange, backoff_s=(0.01, 0.05))
            service.add_route("BTCUSDT", _ignore)
            service.start()
            try:
                await eventually(lambda: emu._users != [], TIMEOUT_S, "the user stream")
                emu.revoke_key()
                await eventually(lambda: service.halted is not None, TIMEOUT_S, "the halt")
                assert service._task is not None
                await asyncio.wait_for(service._task, TIMEOUT_S)  # the pump has ended
                return service
            finally:
                await service.close()

    service = run(scenario())
    assert service.halted is not None and service.halted.startswith("AuthenticationError")
    assert service.reconnects <= 1
    assert service.stats()["halted"] == service.halted
    assert any(
        r.levelname == "ERROR" and "not resubscribing" in r.getMessage() for r in caplog.records
    )


async def _ignore(delivery: Any) -> None:
    pass
