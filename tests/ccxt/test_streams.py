"""CcxtExchange's streams: that each venue's order stream logs in and subscribes, that a bug
inside ccxt is not retried silently, and that closing a stream never kills another one (ccxt
hands every caller waiting for the same message the same Future).

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

from connectors.ccxt.exchange import CcxtExchange
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderRequest, Side
from mm.engine.clock import VirtualClock
from mm.errors import StreamDisconnected
from tests.ccxt.rig import binance_client, ccxt_binance, emulator
from tests.ccxt.test_venue_parsing import MARKETS, VENUE_NAMES, connect, fixture_of, symbol_of
from tests.ccxt.ws_stub import WsStub, ws_stub
from tests.helpers import eventually

TIMEOUT_S = 10.0


def buy(client_id: str) -> OrderRequest:
    return OrderRequest("BTCUSDT", client_id, Side.BUY, D("9900"), D("0.01"))


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
                exchange = binance_client(port, market)
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


def waiting_for_orders(exchange: CcxtExchange) -> bool:
    """ccxt waits for the next order update on some socket (an update sent now is delivered)."""
    return any("orders" in c.futures for c in exchange.client.clients.values())


def test_a_replaced_order_stream_leaves_the_new_one_working() -> None:
    """Make before break (ConnectorService when the routed symbols change): stream B opens, then
    the old stream A closes. ccxt hands every caller of `watch_orders` the same Future, so A's
    reader, cancelled on close, must not cancel B's wait: an order placed after A is gone still
    reaches B."""

    async def scenario() -> None:
        sim = SimulatedExchange(
            SimConfig(balances={"USDT": D(100_000)}, start_prices={"BTCUSDT": D("10000")}),
            VirtualClock(1_700_000_000_000),
        )
        try:
            async with ccxt_binance(sim) as exchange:
                a = exchange.stream_orders(["BTCUSDT"])
                b = exchange.stream_orders(["BTCUSDT"])
                await exchange.place_order(buy("handover-1"))
                for stream in (a, b):  # both are live
                    report = await asyncio.wait_for(anext(stream), TIMEOUT_S)
                    assert report.client_id == "handover-1"
                await eventually(lambda: waiting_for_orders(exchange), TIMEOUT_S, "the next wait")
                await a.aclose()  # type: ignore[attr-defined]
                await exchange.place_order(buy("handover-2"))
                report = await asyncio.wait_for(anext(b), TIMEOUT_S)
                assert report.client_id == "handover-2"
                await b.aclose()  # type: ignore[attr-defined]
        finally:
            await sim.close()

    asyncio.run(scenario())


def test_closing_a_stream_leaves_a_shared_ccxt_wait_to_the_others() -> None:
    """Two account streams wait on ccxt's one Future for the next balance message: cancelling
    the first one's read does not cancel that Future, and the second gets the message."""

    async def scenario() -> None:
        exchange, _ = await connect("okx", "spot", signed=True)
        shared: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        callers = []

        async def watch_balance(*_: Any) -> Any:
            callers.append(1)
            return await shared  # what ccxt's `watch` hands every caller: the same Future

        exchange.client.watch_balance = watch_balance
        try:
            a, b = exchange.stream_account(), exchange.stream_account()
            first_a, first_b = asyncio.ensure_future(anext(a)), asyncio.ensure_future(anext(b))
            await eventually(lambda: len(callers) == 2, TIMEOUT_S, "both streams to wait")
            first_a.cancel()
            await asyncio.gather(first_a, return_exceptions=True)
            assert not shared.cancelled()
            shared.set_result({"free": {"USDT": 5.0}, "used": {"USDT": 1.0}, "timestamp": 7})
            update = await asyncio.wait_for(first_b, TIMEOUT_S)
            assert [(x.asset, x.free, x.locked) for x in update.balances] == [
                ("USDT", D("5.0"), D("1.0"))
            ]
        finally:
            await exchange.close()

    asyncio.run(scenario())


def test_a_wait_cancelled_inside_ccxt_ends_the_stream_as_disconnected() -> None:
    """ccxt (or anything else) cancelling the Future a stream waits on is not the stream's own
    cancellation: it ends as StreamDisconnected (the driver resubscribes), not CancelledError."""

    async def scenario() -> None:
        exchange, _ = await connect("okx", "spot", signed=True)
        shared: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        callers = []

        async def watch_balance(*_: Any) -> Any:
            callers.append(1)
            return await shared

        exchange.client.watch_balance = watch_balance
        try:
            stream = exchange.stream_account()
            first = asyncio.ensure_future(anext(stream))
            await eventually(lambda: callers != [], TIMEOUT_S, "the stream to wait")
            shared.cancel()
            with pytest.raises(StreamDisconnected, match="cancelled"):
                await asyncio.wait_for(first, TIMEOUT_S)
        finally:
            await exchange.close()

    asyncio.run(scenario())


# the fields of each venue's documented ticker subscription (frame, then each entry of "args")
TICKER_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "okx": ({"op", "args"}, {"channel", "instId"}),
    "bitget": ({"op", "args"}, {"instType", "channel", "instId"}),
    "gate": ({"id", "time", "channel", "event", "payload"}, set()),
    "bybit": ({"op", "req_id", "args"}, set()),
}


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_the_price_stream_subscribes_with_the_venues_own_fields(venue: str, market: str) -> None:
    """Nothing another venue needs (binance's stream `name`) leaks into a subscription."""

    async def scenario() -> dict[str, Any] | None:
        async with ws_stub(venue) as (stub, ws_base):
            exchange, _ = await connect(venue, market, ws_base=ws_base)
            try:
                async with reading(exchange.stream_prices([symbol_of(market)])) as first:
                    await eventually(
                        lambda: first.done() or subscription(stub) is not None,
                        TIMEOUT_S,
                        "the ticker subscription",
                    )
                    assert not first.done(), first.exception()
            finally:
                await exchange.close()
            return subscription(stub)

    sent = asyncio.run(scenario())
    assert sent is not None
    frame_fields, arg_fields = TICKER_FIELDS[venue]
    assert set(sent) == frame_fields, sent
    for arg in sent["args"] if arg_fields else ():
        assert set(arg) == arg_fields, sent


def subscription(stub: WsStub) -> dict[str, Any] | None:
    """The first subscription request the stub received."""
    frames = [f.message for f in stub.frames if isinstance(f.message, dict)]
    return next((m for m in frames if "subscribe" in (m.get("op"), m.get("event"))), None)


@pytest.mark.parametrize("market", MARKETS)
def test_the_binance_price_stream_is_the_full_ticker_with_bid_and_ask(market: str) -> None:
    """binance's default ticker stream (`@miniTicker`) has no best bid/ask; `@ticker` has."""

    async def scenario() -> None:
        sim = SimulatedExchange(
            SimConfig(start_prices={"BTCUSDT": D("10000")}), VirtualClock(1_700_000_000_000)
        )
        try:
            async with emulator(sim) as (emu, port):
                exchange = binance_client(port, market, credentials=False)
                try:
                    async with reading(exchange.stream_prices([symbol_of(market)])) as first:
                        await eventually(  # the socket first, then what it subscribes to
                            lambda: any(streams for _ws, streams, _q in emu._markets),
                            TIMEOUT_S,
                            "a subscription",
                        )
                        assert not first.done(), first.exception()
                        assert [streams for _ws, streams, _q in emu._markets] == [
                            {"btcusdt@ticker"}
                        ]
                finally:
                    await exchange.close()
        finally:
            await sim.close()

    asyncio.run(scenario())
