"""CcxtExchange's streams: that each venue's order stream logs in and subscribes, and that a bug
inside ccxt is not retried silently.

bitget, gate, okx and bybit run against `ws_stub` (a loopback socket that answers logins and
records what ccxt sends) with REST replayed from the documented payloads (`Replay`); binance
against the emulator, whose user data stream is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.engine.clock import VirtualClock
from mm.errors import StreamDisconnected
from tests.ccxt.rig import KEY, SECRET, emulator
from tests.ccxt.test_venue_parsing import MARKETS, VENUE_NAMES, connect, fixture_of, symbol_of
from tests.ccxt.ws_stub import WsStub, ws_stub
from tests.helpers import eventually

TIMEOUT_S = 10.0


def login_frame(stub: WsStub) -> int | None:
    """Index of the venue's login request among the frames (None: none sent)."""
    login = {"okx": {"op": "login"}, "bitget": {"op": "login"}, "bybit": {"op": "auth"}}
    want = login.get(stub.venue)
    for i, frame in enumerate(stub.frames):
        if want and isinstance(frame.message, dict) and want.items() <= frame.message.items():
            return i
    return None


def orders_frame(stub: WsStub, market: str) -> int | None:
    """Index of the subscription to the venue's documented order channel (None: not sent)."""
    for i, frame in enumerate(stub.frames):
        m = frame.message
        if not isinstance(m, dict):
            continue
        args = m.get("args", []) if m.get("op") == "subscribe" else []
        if stub.venue in ("okx", "bitget") and any(a.get("channel") == "orders" for a in args):
            return i
        if stub.venue == "bybit" and "order" in args:
            return i
        channel = "spot.orders" if market == "spot" else "futures.orders"
        if stub.venue == "gate" and (m.get("channel"), m.get("event")) == (channel, "subscribe"):
            return i
    return None


@contextlib.asynccontextmanager
async def reading(stream: AsyncIterator[Any]) -> AsyncIterator[asyncio.Task[Any]]:
    """The stream's first item awaited in a task (done early only if the stream failed)."""
    task = asyncio.ensure_future(anext(stream))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_the_order_stream_logs_in_and_subscribes(venue: str, market: str) -> None:
    """ccxt's `authenticate` takes different arguments per venue (gate has no login for its
    order channel at all; its futures channel needs the user id): each stream gets as far as
    subscribing to the venue's order channel, after its login."""

    async def scenario() -> None:
        async with ws_stub(venue) as (stub, ws_base):
            exchange, _ = await connect(venue, market, signed=True, ws_base=ws_base)
            try:
                async with reading(exchange.stream_orders([symbol_of(market)])) as first:
                    await eventually(
                        lambda: first.done() or orders_frame(stub, market) is not None,
                        TIMEOUT_S,
                        "the order channel subscription",
                    )
                    assert not first.done(), first.exception()
                    login, subscribe = login_frame(stub), orders_frame(stub, market)
                    assert subscribe is not None
                    if venue != "gate":
                        assert login is not None and login < subscribe
                    if venue == "gate" and market == "linear":  # the user's channel, by id
                        detail = fixture_of("gate", "orders")["account"]
                        uid = str(detail["GET /api/v4/account/detail"]["user_id"])
                        assert stub.frames[subscribe].message["payload"][0] == uid
            finally:
                await exchange.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("market", MARKETS)
def test_the_binance_order_stream_subscribes_on_the_emulator(market: str) -> None:
    async def scenario() -> None:
        sim = SimulatedExchange(
            SimConfig(start_prices={"BTCUSDT": D("10000")}), VirtualClock(1_700_000_000_000)
        )
        try:
            async with emulator(sim) as (emu, port):
                exchange = CcxtExchange(
                    CcxtConfig(
                        venue="binance",
                        market=market,
                        api_key=KEY,
                        api_secret=SECRET,
                        http_base=f"http://127.0.0.1:{port}",
                        ws_base=f"ws://127.0.0.1:{port}",
                        loopback_only=True,
                    )
                )
                users = emu._users if market == "spot" else emu._futures_users
                try:
                    async with reading(exchange.stream_orders([symbol_of(market)])) as first:
                        await eventually(
                            lambda: first.done() or users != [], TIMEOUT_S, "the user stream"
                        )
                        assert not first.done(), first.exception()
                finally:
                    await exchange.close()
        finally:
            await sim.close()

    asyncio.run(scenario())


def test_a_bug_inside_ccxt_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A TypeError from a wrong call (or a ccxt defect) is no venue outage: it still ends the
    stream (`StreamDisconnected`, so the driver retries), but it is logged at error level with
    its traceback, once, not retried forever in silence."""

    async def broken(*_: Any, **__: Any) -> None:
        raise TypeError("authenticate() missing 1 required positional argument: 'url'")

    async def scenario() -> None:
        exchange, _ = await connect("okx", "spot", signed=True)
        exchange.client.authenticate = broken
        try:
            for _ in range(3):
                with pytest.raises(StreamDisconnected, match="TypeError"):
                    async for _report in exchange.stream_orders(["BTCUSDT"]):
                        pass
        finally:
            await exchange.close()

    with caplog.at_level(logging.ERROR, logger="connectors.ccxt"):
        asyncio.run(scenario())
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and record.exc_info[0] is TypeError
    assert "missing 1 required positional argument" in record.getMessage() + str(record.exc_info[1])
