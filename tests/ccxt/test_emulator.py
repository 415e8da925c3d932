"""The Binance-dialect emulator (connectors/emulator) driven by the real ccxt client and raw HTTP.

Three ways in, each for what it proves:
- the real `ccxt.pro.binance` client, configured the way `CcxtExchange` configures it (the
  venue's options, every URL moved to the emulator on 127.0.0.1): the dialect is good enough for
  ccxt's parsers — markets, candles, tickers, orders by client id, trades, balances, streams;
- raw HTTP (aiohttp, signing by hand) where the wire itself matters: status codes, Binance's
  `{"code", "msg"}` error shape, headers, what exactly the signature covers;
- `CcxtExchange` where the behaviour is ours: which `mm.errors` error a venue answer becomes,
  the account-wide pause after a rate limit, resolving a lost answer by client id.

Every effect is checked on the `SimulatedExchange` behind the emulator (orders, balances, fees).
The venue runs on a `VirtualClock` without its feed: prices move only by `set_price`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import pytest
import yarl

from connectors.ccxt.config import override_urls, urls_in
from connectors.ccxt.exchange import CcxtExchange
from connectors.ccxt.venues import VENUES
from connectors.emulator import wire
from connectors.emulator.binance import BinanceEmulator
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm import errors
from mm.core.model import OrderReport, OrderRequest, OrderStatus, Side
from mm.engine.clock import VirtualClock
from mm.netaddr import is_loopback
from tests.ccxt.rig import KEY, SECRET, binance_client, ccxt_binance, emulator
from tests.helpers import eventually

T0 = 1_700_000_100_000  # on a 5-minute boundary
SPOT, UNIFIED = "BTCUSDT", "BTC/USDT"
MAKER, TAKER = D("0.001"), D("0.002")
USDT0, BTC0 = D(100_000), D(1)
TIMEOUT_S = 10.0
OPEN, FILLED, CANCELED = OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELED


# -- rig ------------------------------------------------------------------------------------------
def new_venue() -> tuple[VirtualClock, SimulatedExchange]:
    """BTC at 10000.00 with 100k USDT and 1 BTC, 0.1% maker and 0.2% taker fees."""
    clock = VirtualClock(T0)
    config = SimConfig(
        balances={"USDT": USDT0, "BTC": BTC0},
        start_prices={"BTCUSDT": D("10000"), "ETHUSDT": D("2000")},
        maker_fee_rate=MAKER,
        taker_fee_rate=TAKER,
    )
    return clock, SimulatedExchange(config, clock)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # the parsed JSON (None for an empty body)


@dataclass
class World:
    """A venue, the emulator serving it on 127.0.0.1 and an HTTP session to talk to it raw."""

    clock: VirtualClock
    sim: SimulatedExchange
    emu: BinanceEmulator
    port: int
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, *, query: str = "", body: str = "", key: str | None = KEY
    ) -> Reply:
        """One request sent exactly as given (no re-encoding of `query`)."""
        headers = {} if key is None else {"X-MBX-APIKEY": key}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = yarl.URL(
            f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else ""), encoded=True
        )
        async with self.session.request(
            method, url, data=body.encode() or None, headers=headers
        ) as response:
            text = await response.text()
            return Reply(
                response.status, dict(response.headers), json.loads(text) if text else None
            )

    async def place(self, params: dict[str, Any], **signing: Any) -> Reply:
        """POST /api/v3/order with `params` signed in the body."""
        return await self.call("POST", "/api/v3/order", body=signed(params, **signing))

    def cids(self) -> list[str]:
        return [o.client_id for o in self.sim.orders(SPOT)]


def run(scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        clock, sim = new_venue()
        try:
            async with emulator(sim) as (emu, port), aiohttp.ClientSession() as session:
                await scenario(World(clock, sim, emu, port, session))
        finally:
            await sim.close()

    asyncio.run(main())


def run_exchange(
    scenario: Callable[[VirtualClock, SimulatedExchange, CcxtExchange], Awaitable[None]],
    **config: Any,
) -> None:
    """`scenario` with a CcxtExchange (tests/ccxt/rig.py) in front of the emulator."""

    async def main() -> None:
        clock, sim = new_venue()
        try:
            async with ccxt_binance(sim, **config) as exchange:
                await scenario(clock, sim, exchange)
        finally:
            await sim.close()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def ccxt_client(port: int, **credentials: str) -> AsyncIterator[Any]:
    """The real `ccxt.pro.binance`, configured as `CcxtExchange` configures it, on the emulator."""
    venue = VENUES["binance"]
    client = ccxtpro.binance(
        {
            "apiKey": credentials.get("api_key", KEY),
            "secret": credentials.get("api_secret", SECRET),
            "enableRateLimit": True,
            "timeout": 10_000,
            "options": dict(venue.spot_options),
        }
    )
    try:
        client.urls["api"] = override_urls(
            client.urls["api"], f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        )
        leaving = [u for u in urls_in(client.urls["api"]) if not is_loopback(urlsplit(u).hostname)]
        assert not leaving, f"would leave this machine: {leaving}"
        yield client
    finally:
        await client.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def signed(params: dict[str, Any], *, secret: str = SECRET) -> str:
    """`params` as a query string with Binance's signature: HMAC-SHA256 over exactly that text."""
    payload = urlencode(params)
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}&signature={signature}"


def order_params(cid: str, price: str = "9900", qty: str = "0.01", side: str = "BUY") -> dict:
    return {
        "symbol": SPOT,
        "side": side,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": qty,
        "price": price,
        "newClientOrderId": cid,
        "timestamp": now_ms(),
    }


def buy(cid: str, price: str = "9900", qty: str = "0.01") -> OrderRequest:
    return OrderRequest(SPOT, cid, Side.BUY, D(price), D(qty))


def dec(value: Any) -> D:
    """A ccxt number (float, int or str) as the decimal the venue sent."""
    return D(repr(value)) if isinstance(value, float) else D(str(value))


def error(reply: Reply, status: int, code: int) -> str:
    """Asserts Binance's error shape (exactly `code` and `msg`) and returns the message."""
    assert reply.status == status, reply
    assert set(reply.body) == {"code", "msg"} and reply.body["code"] == code, reply
    assert isinstance(reply.body["msg"], str) and reply.body["msg"]
    return reply.body["msg"]


def market_subscribed(emu: BinanceEmulator, stream: str) -> bool:
    """The emulator has a market socket subscribed to `stream` (ticks after this are sent)."""
    return any(stream in streams for _ws, streams, _queue in emu._markets)


def watching(client: Any, url: str, message_hash: str) -> bool:
    """ccxt waits on `message_hash` on the socket to `url`: an update sent now resolves the watch
    (one sent before the wait exists is only cached, and a `watch_*` call would miss it)."""
    socket = client.clients.get(url)
    return socket is not None and message_hash in socket.futures


async def next_update(
    client: Any, url: str, message_hash: str, watch: Awaitable[Any], trigger: Callable[[], Any]
) -> Any:
    """Start `watch`, wait until ccxt waits for its update, run `trigger`, return the update."""
    task = asyncio.ensure_future(watch)
    try:
        await eventually(
            lambda: task.done() or watching(client, url, message_hash), TIMEOUT_S, message_hash
        )
        outcome = trigger()
        if asyncio.iscoroutine(outcome):
            await outcome
        return await asyncio.wait_for(task, TIMEOUT_S)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# -- 1. the list through the real ccxt client ---------------------------------------------
def test_load_markets_lists_every_spot_market_with_its_rules_in_one_request() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            before = w.emu.requests
            markets = await c.load_markets()
            assert w.emu.requests == before + 1  # GET /api/v3/exchangeInfo, no signed sapi calls
            spot = sorted(s for s in w.sim._rules if not s.endswith("-PERP"))
            assert sorted(m["id"] for m in markets.values()) == spot
            assert all(m["spot"] and m["active"] for m in markets.values())
            btc = markets[UNIFIED]
            assert (btc["base"], btc["quote"]) == ("BTC", "USDT")
            assert dec(btc["precision"]["price"]) == D("0.01")
            assert dec(btc["precision"]["amount"]) == D("0.00001")
            assert dec(btc["limits"]["amount"]["min"]) == D("0.00001")
            assert dec(btc["limits"]["cost"]["min"]) == D("5")

    run(scenario)


def test_fetch_ohlcv_returns_the_venues_candles_per_interval_since_and_limit() -> None:
    async def scenario(w: World) -> None:
        for offset_s, price in ((20, "10050"), (40, "9990"), (60, "10020"), (90, "10040")):
            w.clock.set(T0 + offset_s * 1000)
            w.sim.set_price(SPOT, D(price))
        minute1 = [T0, 10000.0, 10050.0, 9990.0, 9990.0, 0.0]
        minute2 = [T0 + 60_000, 10020.0, 10040.0, 10020.0, 10040.0, 0.0]
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            assert await c.fetch_ohlcv(UNIFIED, "1m") == [minute1, minute2]
            assert await c.fetch_ohlcv(UNIFIED, "1m", since=T0 + 60_000) == [minute2]
            assert await c.fetch_ohlcv(UNIFIED, "1m", limit=1) == [minute2]
            assert await c.fetch_ohlcv(UNIFIED, "5m") == [
                [T0, 10000.0, 10050.0, 9990.0, 10040.0, 0.0]
            ]

    run(scenario)


def test_fetch_ticker_reads_the_venues_last_price() -> None:
    async def scenario(w: World) -> None:
        w.clock.advance(1000)
        w.sim.set_price(SPOT, D("10123.45"))
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            ticker = await c.fetch_ticker(UNIFIED)
            assert ticker["symbol"] == UNIFIED
            assert dec(ticker["last"]) == D("10123.45")
            assert (dec(ticker["bid"]), dec(ticker["ask"])) == (D("10123.44"), D("10123.46"))
            other = await c.fetch_ticker("ETH/USDT")
            assert dec(other["last"]) == D("2000")

    run(scenario)


def test_orders_by_client_id_are_created_fetched_listed_and_cancelled_on_the_venue() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            bought = await c.create_order(
                UNIFIED, "limit", "buy", 0.01, 9900, {"clientOrderId": "rt-buy"}
            )
            sold = await c.create_order(
                UNIFIED, "limit", "sell", 0.02, 10100, {"clientOrderId": "rt-sell"}
            )
            # ccxt sent newClientOrderId: the venue knows the orders by our ids, not made-up ones
            on_sim = {o.client_id: o for o in w.sim.orders(SPOT)}
            assert set(on_sim) == {"rt-buy", "rt-sell"}
            b, s = on_sim["rt-buy"], on_sim["rt-sell"]
            assert (b.side, b.price, b.qty, b.status) == (Side.BUY, D("9900"), D("0.01"), OPEN)
            assert (s.side, s.price, s.qty, s.status) == (Side.SELL, D("10100"), D("0.02"), OPEN)
            assert (bought["id"], bought["clientOrderId"]) == (b.exchange_id, "rt-buy")
            assert (bought["status"], sold["status"]) == ("open", "open")

            fetched = await c.fetch_order(None, UNIFIED, {"clientOrderId": "rt-sell"})
            assert (fetched["id"], fetched["side"], dec(fetched["amount"])) == (
                s.exchange_id,
                "sell",
                D("0.02"),
            )
            assert (await c.fetch_order(sold["id"], UNIFIED))["clientOrderId"] == "rt-sell"
            listed = await c.fetch_open_orders(UNIFIED)
            assert sorted(o["clientOrderId"] for o in listed) == ["rt-buy", "rt-sell"]
            balance = await c.fetch_balance()
            assert dec(balance["used"]["USDT"]) == D("9900") * D("0.01") * (1 + TAKER)
            assert dec(balance["used"]["BTC"]) == D("0.02")

            cancelled = await c.cancel_order(None, UNIFIED, {"clientOrderId": "rt-buy"})
            assert (cancelled["clientOrderId"], cancelled["status"]) == ("rt-buy", "canceled")
            assert b.status is CANCELED and s.status is OPEN
            listed = await c.fetch_open_orders(UNIFIED)
            assert [o["clientOrderId"] for o in listed] == ["rt-sell"]
            balance = await c.fetch_balance()
            assert dec(balance["used"]["USDT"]) == 0
            assert dec(balance["free"]["USDT"]) == USDT0

    run(scenario)


def test_a_resting_buy_fills_as_maker_moving_balances_and_charging_the_maker_fee() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            placed = await c.create_order(
                UNIFIED, "limit", "buy", 0.01, 9900, {"clientOrderId": "mk-buy"}
            )
            assert await c.fetch_my_trades(UNIFIED) == []
            w.clock.advance(1000)
            w.sim.set_price(SPOT, D("9900"))

            order = await c.fetch_order(None, UNIFIED, {"clientOrderId": "mk-buy"})
            assert (order["status"], dec(order["filled"]), dec(order["average"])) == (
                "closed",
                D("0.01"),
                D("9900"),
            )
            [trade] = await c.fetch_my_trades(UNIFIED)
            assert (trade["order"], trade["side"], trade["takerOrMaker"]) == (
                placed["id"],
                "buy",
                "maker",
            )
            assert (dec(trade["price"]), dec(trade["amount"])) == (D("9900"), D("0.01"))
            assert trade["fee"]["currency"] == "USDT"
            assert dec(trade["fee"]["cost"]) == D("99") * MAKER == D("0.099")
            assert trade["timestamp"] == T0 + 1000

            balance = await c.fetch_balance()
            assert dec(balance["free"]["USDT"]) == USDT0 - D("99") - D("0.099")
            assert dec(balance["used"]["USDT"]) == 0
            assert dec(balance["free"]["BTC"]) == BTC0 + D("0.01")
            venue = w.sim.account.balances()
            assert (venue["USDT"].free, venue["BTC"].free) == (D("99900.901"), D("1.01"))

    run(scenario)


def test_a_crossing_order_takes_at_the_last_price_with_the_taker_fee() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            taken = await c.create_order(
                UNIFIED, "limit", "buy", 0.01, 10100, {"clientOrderId": "tk-buy"}
            )
            assert (taken["status"], dec(taken["filled"]), dec(taken["average"])) == (
                "closed",
                D("0.01"),
                D("10000"),
            )
            [trade] = await c.fetch_my_trades(UNIFIED)
            assert (trade["takerOrMaker"], dec(trade["price"])) == ("taker", D("10000"))
            assert dec(trade["fee"]["cost"]) == D("100") * TAKER == D("0.2")
            balance = await c.fetch_balance()
            assert dec(balance["free"]["USDT"]) == USDT0 - D("100") - D("0.2")
            assert dec(balance["free"]["BTC"]) == BTC0 + D("0.01")
            assert [o.status for o in w.sim.orders(SPOT)] == [FILLED]

    run(scenario)


@pytest.mark.parametrize(
    ("params", "stream"),
    [({}, "btcusdt@miniTicker"), ({"name": "ticker"}, "btcusdt@ticker")],
    ids=["miniTicker", "ticker"],
)
def test_watch_ticker_streams_the_venues_price_moves(params: dict, stream: str) -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()

            async def next_ticker(price: str) -> Any:
                task = asyncio.ensure_future(c.watch_ticker(UNIFIED, params))
                await eventually(
                    lambda: task.done() or market_subscribed(w.emu, stream), TIMEOUT_S, stream
                )
                w.clock.advance(1000)
                w.sim.set_price(SPOT, D(price))
                return await asyncio.wait_for(task, TIMEOUT_S)

            for n, price in enumerate(("10123.45", "10050.00"), start=1):
                ticker = await next_ticker(price)
                assert ticker["symbol"] == UNIFIED
                assert dec(ticker["last"]) == D(price)
                assert ticker["timestamp"] == T0 + n * 1000  # the venue's (virtual) time
                if stream.endswith("@ticker"):  # the full ticker carries the touch
                    assert dec(ticker["bid"]) == D(price) - D("0.01")
                    assert dec(ticker["ask"]) == D(price) + D("0.01")

    run(scenario)


def test_watch_orders_streams_new_and_filled_orders_with_the_fee() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            url = c.urls["api"]["ws"]["ws-api"]["spot"]
            hash_ = f"orders:{UNIFIED}"

            async def place() -> None:
                await c.create_order(
                    UNIFIED, "limit", "buy", 0.01, 9900, {"clientOrderId": "ws-buy"}
                )

            [new] = await next_update(c, url, hash_, c.watch_orders(UNIFIED), place)
            assert (new["clientOrderId"], new["status"], dec(new["filled"])) == (
                "ws-buy",
                "open",
                D(0),
            )
            assert new["id"] == w.sim.orders(SPOT)[0].exchange_id

            def fill() -> None:
                w.clock.advance(1000)
                w.sim.set_price(SPOT, D("9900"))

            updates = await next_update(c, url, hash_, c.watch_orders(UNIFIED), fill)
            done = updates[-1]
            assert (done["clientOrderId"], done["status"]) == ("ws-buy", "closed")
            assert (dec(done["filled"]), dec(done["average"])) == (D("0.01"), D("9900"))
            assert dec(done["fee"]["cost"]) == D("0.099") and done["fee"]["currency"] == "USDT"
            assert done["lastTradeTimestamp"] == T0 + 1000

    run(scenario)


def test_through_ccxt_exchange_the_order_stream_carries_the_fill_and_balances_move() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        stream = ex.stream_orders([SPOT])
        try:
            placed = await ex.place_order(buy("st-buy"))
            assert (placed.status, placed.exchange_id) == (OPEN, sim.orders(SPOT)[0].exchange_id)
            clock.advance(1000)
            sim.set_price(SPOT, D("9900"))
            report: OrderReport | None = None
            async with asyncio.timeout(TIMEOUT_S):
                async for report in stream:
                    if report.client_id == "st-buy" and report.status is FILLED:
                        break
            assert report is not None and report.status is FILLED
            assert (report.filled_qty, report.avg_price, report.fee) == (
                D("0.01"),
                D("9900"),
                D("0.099"),  # learned from the stream's trade
            )
        finally:
            await stream.aclose()
        fetched = await ex.fetch_order(SPOT, "st-buy")
        assert (fetched.status, fetched.fee) == (FILLED, D("0.099"))
        [fill] = await ex.fetch_fills(SPOT, T0)
        assert (fill.client_id, fill.qty, fill.price, fill.fee, fill.is_maker) == (
            "st-buy",
            D("0.01"),
            D("9900"),
            D("0.099"),
            True,
        )
        balances = await ex.fetch_balances()
        assert balances["USDT"].free == USDT0 - D("99") - D("0.099")
        assert (balances["BTC"].free, balances["BTC"].locked) == (BTC0 + D("0.01"), 0)

    run_exchange(scenario)


# -- 2. duplicate client ids ----------------------------------------------------------------------
def test_a_second_open_order_reusing_a_client_id_gets_binances_duplicate_error() -> None:
    async def scenario(w: World) -> None:
        first = await w.place(order_params("dup-1"))
        assert first.status == 200 and first.body["clientOrderId"] == "dup-1"
        again = await w.place(order_params("dup-1", price="9800", qty="0.02"))
        assert again.status == 400
        assert again.body == {"code": -2010, "msg": "Duplicate order sent."}
        [order] = w.sim.orders(SPOT)
        assert (order.client_id, order.price, order.qty, order.status) == (
            "dup-1",
            D("9900"),
            D("0.01"),
            OPEN,
        )

    run(scenario)


def test_a_finished_orders_client_id_is_accepted_again_as_binance_does() -> None:
    """Binance's newClientOrderId is unique among open orders only: once the order is finished,
    the id may be sent again and names a new order (and a lookup by it finds the newest)."""

    async def scenario(w: World) -> None:
        first = await w.place(order_params("again-1"))
        cancel = signed({"symbol": SPOT, "origClientOrderId": "again-1", "timestamp": now_ms()})
        assert (await w.call("DELETE", "/api/v3/order", query=cancel)).status == 200
        second = await w.place(order_params("again-1", price="9800"))
        assert second.status == 200, second
        assert second.body["clientOrderId"] == "again-1"
        assert second.body["orderId"] != first.body["orderId"]
        query = signed({"symbol": SPOT, "origClientOrderId": "again-1", "timestamp": now_ms()})
        found = await w.call("GET", "/api/v3/order", query=query)
        assert (found.body["orderId"], found.body["price"]) == (second.body["orderId"], "9800")
        assert [(o.price, o.status) for o in w.sim.orders(SPOT)] == [
            (D("9900"), CANCELED),
            (D("9800"), OPEN),
        ]

    run(scenario)


def test_through_ccxt_exchange_a_reused_client_id_is_duplicate_order_and_nothing_new_exists() -> (
    None
):
    """The venue's refusal of an open order's id (here placed by an earlier process, which this
    one does not remember sending) is DuplicateOrder; one this process sent is looked up first
    and DuplicateOrder too, whatever state its order is in."""

    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        await sim.place_order(buy("dup-2"))  # an earlier process
        with pytest.raises(errors.DuplicateOrder, match="Duplicate order sent"):
            await ex.place_order(buy("dup-2", price="9800", qty="0.02"))
        with pytest.raises(errors.DuplicateOrder, match="already on the venue"):
            await ex.place_order(buy("dup-2", price="9800", qty="0.02"))
        [order] = sim.orders(SPOT)
        assert (order.client_id, order.price, order.qty, order.status) == (
            "dup-2",
            D("9900"),
            D("0.01"),
            OPEN,
        )
        assert [r.client_id for r in await ex.fetch_open_orders(SPOT)] == ["dup-2"]

    run_exchange(scenario)


# -- 3. signatures --------------------------------------------------------------------------------
def test_a_correctly_signed_request_succeeds_and_the_signature_covers_query_plus_body() -> None:
    async def scenario(w: World) -> None:
        account = await w.call("GET", "/api/v3/account", query=signed({"timestamp": now_ms()}))
        assert account.status == 200, account
        balances = {b["asset"]: (D(b["free"]), D(b["locked"])) for b in account.body["balances"]}
        assert balances == {"USDT": (USDT0, 0), "BTC": (BTC0, 0)}

        # Binance signs totalParams = query string + request body, concatenated as sent
        query = urlencode({"symbol": SPOT, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"})
        body = urlencode(
            {
                "quantity": "0.01",
                "price": "9900",
                "newClientOrderId": "split-1",
                "timestamp": now_ms(),
            }
        )
        signature = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        placed = await w.call(
            "POST", "/api/v3/order", query=query, body=f"{body}&signature={signature}"
        )
        assert placed.status == 200, placed
        assert w.cids() == ["split-1"]

        found = await w.call(
            "GET",
            "/api/v3/order",
            query=signed({"symbol": SPOT, "origClientOrderId": "split-1", "timestamp": now_ms()}),
        )
        assert (found.status, found.body["status"], found.body["price"]) == (200, "NEW", "9900")

    run(scenario)


def _wrong_secret(p: dict) -> tuple[str, str | None]:
    return signed(p, secret="not-the-secret-0001"), KEY


def _tampered(p: dict) -> tuple[str, str | None]:
    return signed(p).replace("price=9900", "price=9800"), KEY  # changed after signing


def _wrong_key(p: dict) -> tuple[str, str | None]:
    return signed(p), "not-the-key-0001"


def _no_key(p: dict) -> tuple[str, str | None]:
    return signed(p), None


def _stale(p: dict) -> tuple[str, str | None]:
    return signed({**p, "timestamp": p["timestamp"] - 60_000}), KEY


def _ahead(p: dict) -> tuple[str, str | None]:
    return signed({**p, "timestamp": p["timestamp"] + 60_000}), KEY


def _unsigned(p: dict) -> tuple[str, str | None]:
    return urlencode(p), KEY


@pytest.mark.parametrize(
    ("request_of", "status", "code"),
    [
        (_wrong_secret, 400, -1022),
        (_tampered, 400, -1022),
        (_wrong_key, 401, -2015),
        (_no_key, 401, -2014),
        (_stale, 400, -1021),
        (_ahead, 400, -1021),
        (_unsigned, 400, -1102),
    ],
    ids=["wrong-secret", "tampered", "wrong-key", "no-key", "stale", "ahead", "unsigned"],
)
def test_a_badly_authenticated_order_gets_binances_error_and_is_not_placed(
    request_of: Callable[[dict], tuple[str, str | None]], status: int, code: int
) -> None:
    async def scenario(w: World) -> None:
        body, key = request_of(order_params("auth-1"))
        error(await w.call("POST", "/api/v3/order", body=body, key=key), status, code)
        assert w.cids() == []
        read, key = request_of({"timestamp": now_ms(), "price": "9900"})
        error(await w.call("GET", "/api/v3/account", query=read, key=key), status, code)

    run(scenario)


@pytest.mark.parametrize(
    ("config", "skew_ms", "marker"),
    [
        ({"api_secret": "not-the-secret-0001"}, 0, '"code":-1022'),
        ({"api_key": "not-the-key-0001"}, 0, '"code":-2015'),
        ({}, 60_000, '"code":-1021'),
        ({"api_key": ""}, 0, "apiKey"),  # ccxt refuses before sending anything
    ],
    ids=["wrong-secret", "wrong-key", "stale-timestamp", "no-key"],
)
def test_through_ccxt_exchange_bad_authentication_is_authentication_error(
    config: dict, skew_ms: int, marker: str
) -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        ex.client.options["timeDifference"] = skew_ms  # ccxt signs now - timeDifference
        with pytest.raises(errors.AuthenticationError) as placing:
            await ex.place_order(buy("auth-2"))
        assert marker in str(placing.value)
        assert sim.orders(SPOT) == []
        with pytest.raises(errors.AuthenticationError):
            await ex.fetch_balances()

    run_exchange(scenario, **config)


# -- 4. what the emulator does not implement ------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sapi/v1/capital/config/getall"),
        ("POST", "/api/v3/order/oco"),
        ("PUT", "/api/v3/order"),
        ("POST", "/api/v3/userDataStream"),
        ("GET", "/dapi/v1/exchangeInfo"),
        ("GET", "/api/v3/depth"),
    ],
)
def test_an_unsupported_endpoint_answers_404_naming_it(method: str, path: str) -> None:
    async def scenario(w: World) -> None:
        query = signed({"symbol": SPOT, "timestamp": now_ms()})
        msg = error(await w.call(method, path, query=query), 404, -1000)
        assert f"{method} {path}" in msg
        assert w.cids() == []

    run(scenario)


def test_ccxt_sees_an_unsupported_endpoint_fail_never_a_fake_success() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            with pytest.raises(ccxt.BaseError, match="GET /sapi/v1/capital/config/getall"):
                await c.sapi_get_capital_config_getall()

    run(scenario)


def test_an_unsupported_websocket_api_method_answers_an_error_naming_it() -> None:
    async def scenario(w: World) -> None:
        async with w.session.ws_connect(f"ws://127.0.0.1:{w.port}/ws-api/v3") as ws:
            await ws.send_json({"id": "7", "method": "order.place", "params": {"symbol": SPOT}})
            answer = await asyncio.wait_for(ws.receive_json(), TIMEOUT_S)
        assert answer["id"] == "7" and answer["status"] == 400
        assert "order.place" in answer["error"]["msg"]
        assert w.cids() == []

    run(scenario)


# -- 5. venue faults on the wire ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("rate_limit", 429, -1003), ("unavailable", 503, -1001), ("timeout", 503, -1007)],
)
def test_a_fault_before_processing_answers_binances_error_and_places_nothing(
    kind: str, status: int, code: int
) -> None:
    async def scenario(w: World) -> None:
        w.sim.faults.inject("place_order", kind)
        reply = await w.place(order_params("fault-1"))
        error(reply, status, code)
        if kind == "rate_limit":
            assert int(reply.headers["Retry-After"]) >= 1
        assert w.cids() == []
        assert w.sim.faults.fired[kind] == 1
        after = await w.place(order_params("fault-1"))  # not placed: the same id is still free
        assert after.status == 200 and w.cids() == ["fault-1"]

    run(scenario)


def test_faults_reach_every_endpoint_backed_by_the_venue() -> None:
    async def scenario(w: World) -> None:
        w.sim.faults.inject("fetch_klines", "rate_limit")
        error(await w.call("GET", "/api/v3/klines", query=f"symbol={SPOT}&interval=1m"), 429, -1003)
        w.sim.faults.inject("fetch_open_orders", "unavailable")
        query = signed({"symbol": SPOT, "timestamp": now_ms()})
        error(await w.call("GET", "/api/v3/openOrders", query=query), 503, -1001)
        w.sim.faults.inject("fetch_balances", "rate_limit")
        error(
            await w.call("GET", "/api/v3/account", query=signed({"timestamp": now_ms()})),
            429,
            -1003,
        )

    run(scenario)


def test_timeout_after_accept_answers_execution_status_unknown_and_the_order_exists() -> None:
    async def scenario(w: World) -> None:
        w.sim.faults.inject("place_order", "timeout_after_accept")
        msg = error(await w.place(order_params("lost-1")), 503, -1007)
        assert "execution status unknown" in msg
        [order] = w.sim.orders(SPOT)
        assert (order.client_id, order.status) == ("lost-1", OPEN)
        found = await w.call(
            "GET",
            "/api/v3/order",
            query=signed({"symbol": SPOT, "origClientOrderId": "lost-1", "timestamp": now_ms()}),
        )
        assert found.status == 200
        assert (found.body["orderId"], found.body["status"]) == (int(order.exchange_id), "NEW")

    run(scenario)


def test_through_ccxt_exchange_a_rate_limit_is_rate_limited_and_pauses_later_calls() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        sim.faults.inject("place_order", "rate_limit")
        before = time.monotonic()
        with pytest.raises(errors.RateLimited, match="-1003"):
            await ex.place_order(buy("rl-1"))
        assert ex._pause_until >= before + 0.9  # Retry-After: 1 (also the default pause)
        pause_until = ex._pause_until
        assert await ex.fetch_open_orders(SPOT) == []
        assert time.monotonic() >= pause_until  # the next call waited out the pause
        assert sim.orders(SPOT) == []
        placed = await ex.place_order(buy("rl-1"))  # it was not placed: the id is still free
        assert placed.status is OPEN and [o.client_id for o in sim.orders(SPOT)] == ["rl-1"]

    run_exchange(scenario)


def test_through_ccxt_exchange_the_pause_is_the_venues_retry_after() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        async def slow_down(request: OrderRequest) -> OrderReport:
            raise errors.RateLimited("venue: slow down", retry_after_s=2.0)

        sim.place_order = slow_down  # type: ignore[method-assign]  # the venue asks for 2 s
        before = time.monotonic()
        with pytest.raises(errors.RateLimited) as limited:
            await ex.place_order(buy("rl-2"))
        assert limited.value.retry_after_s == 2.0  # from the Retry-After header, not the default
        assert before + 2.0 <= ex._pause_until <= time.monotonic() + 2.0

    run_exchange(scenario)


def test_through_ccxt_exchange_a_418_ban_is_rate_limited_and_pauses_every_symbol() -> None:
    """Binance answers 418 (IP banned for ignoring 429s) with a Retry-After: the same account-wide
    pause as a 429, for the venue's time, not one symbol's backoff."""

    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        async def banned(request: OrderRequest) -> OrderReport:
            raise wire.BinanceError(
                418, -1003, "Way too much request weight used; IP banned.", {"Retry-After": "2"}
            )

        sim.place_order = banned  # type: ignore[method-assign]
        before = time.monotonic()
        with pytest.raises(errors.RateLimited, match="418") as limited:
            await ex.place_order(buy("ban-1"))
        assert limited.value.retry_after_s == 2.0  # the venue's Retry-After, not the default
        pause_until = ex._pause_until
        assert before + 2.0 <= pause_until <= time.monotonic() + 2.0
        assert await ex.fetch_open_orders("ETHUSDT") == []  # another symbol waits too
        assert time.monotonic() >= pause_until

    run_exchange(scenario)


def test_through_ccxt_exchange_unavailable_is_exchange_unavailable_and_places_nothing() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        sim.faults.inject("place_order", "unavailable")
        with pytest.raises(errors.ExchangeUnavailable) as failed:
            await ex.place_order(buy("un-1"))
        assert type(failed.value) is errors.ExchangeUnavailable, failed.value
        assert sim.orders(SPOT) == []
        with pytest.raises(errors.OrderNotFound):
            await ex.fetch_order(SPOT, "un-1")

    run_exchange(scenario)


def test_through_ccxt_exchange_a_lost_answer_is_request_timeout_and_resolved_by_client_id() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        sim.faults.inject("place_order", "timeout_after_accept")
        with pytest.raises(errors.RequestTimeout, match="-1007"):
            await ex.place_order(buy("lost-2"))
        [order] = sim.orders(SPOT)  # it went through although the answer said it may not have
        assert (order.client_id, order.status) == ("lost-2", OPEN)
        found = await ex.fetch_order(SPOT, "lost-2")
        assert (found.status, found.exchange_id, found.qty) == (OPEN, order.exchange_id, D("0.01"))
        cancelled = await ex.cancel_order(SPOT, "lost-2")
        assert cancelled.status is CANCELED and order.status is CANCELED

    run_exchange(scenario)


def test_through_ccxt_exchange_resending_after_a_lost_answer_never_places_twice() -> None:
    """The engine sends a place again after RequestTimeout. On Binance the id is free again once
    its order has filled, so the re-send must look the id up first: the first send went through
    and filled, and the retry is DuplicateOrder (the engine then reads the order), not a second
    order."""

    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        sim.faults.inject("place_order", "timeout_after_accept")
        crossing = buy("lost-4", price="10100")  # takes at once: FILLED before the answer
        with pytest.raises(errors.RequestTimeout):
            await ex.place_order(crossing)
        [order] = sim.orders(SPOT)
        assert order.status is FILLED
        with pytest.raises(errors.DuplicateOrder):
            await ex.place_order(crossing)  # the retry
        assert [(o.client_id, o.status) for o in sim.orders(SPOT)] == [("lost-4", FILLED)]
        assert (await ex.fetch_order(SPOT, "lost-4")).status is FILLED

    run_exchange(scenario)


def test_through_ccxt_exchange_a_timeout_before_processing_leaves_nothing_to_find() -> None:
    async def scenario(clock: VirtualClock, sim: SimulatedExchange, ex: CcxtExchange) -> None:
        sim.faults.inject("place_order", "timeout")
        with pytest.raises(errors.RequestTimeout):
            await ex.place_order(buy("lost-3"))
        assert sim.orders(SPOT) == []
        with pytest.raises(errors.OrderNotFound):
            await ex.fetch_order(SPOT, "lost-3")

    run_exchange(scenario)


# -- 6. market data errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/api/v3/ticker/24hr", "/api/v3/ticker/bookTicker", "/api/v3/ticker/price", "/api/v3/klines"],
)
@pytest.mark.parametrize("symbol", ["FOOUSDT", "BTCUSDT-PERP"])
def test_an_unknown_symbol_is_invalid_symbol(path: str, symbol: str) -> None:
    async def scenario(w: World) -> None:
        reply = await w.call("GET", path, query=urlencode({"symbol": symbol, "interval": "1m"}))
        assert error(reply, 400, -1121) == "Invalid symbol."

    run(scenario)


def test_an_order_on_an_unknown_symbol_is_invalid_symbol_and_not_placed() -> None:
    async def scenario(w: World) -> None:
        error(await w.place({**order_params("sym-1"), "symbol": "FOOUSDT"}), 400, -1121)
        assert all(not orders for orders in w.sim._fills.values())
        assert not [o for s in w.sim._rules for o in w.sim.orders(s)]

    run(scenario)


@pytest.mark.parametrize("interval", ["7m", "60s", "", "1x"])
def test_klines_with_a_bad_interval_is_invalid_interval(interval: str) -> None:
    async def scenario(w: World) -> None:
        reply = await w.call("GET", "/api/v3/klines", query=f"symbol={SPOT}&interval={interval}")
        assert error(reply, 400, -1120) == "Invalid interval."

    run(scenario)


def test_ccxt_maps_the_market_data_errors_to_its_classes() -> None:
    async def scenario(w: World) -> None:
        async with ccxt_client(w.port) as c:
            await c.load_markets()
            with pytest.raises(ccxt.BadSymbol, match='"code":-1121'):
                await c.public_get_ticker_24hr({"symbol": "FOOUSDT"})
            with pytest.raises(ccxt.BadRequest, match='"code":-1120'):
                await c.fetch_ohlcv(UNIFIED, "7m")

    run(scenario)


# -- 6. the account's position mode ---------------------------------------------------------------
@pytest.mark.parametrize(("market", "hedged"), [("linear", False), ("spot", True)])
def test_load_markets_accepts_a_one_way_account_and_spot_never_asks(
    market: str, hedged: bool
) -> None:
    async def main() -> None:
        _, sim = new_venue()
        try:
            async with emulator(sim) as (emu, port):
                emu.dual_side_position = hedged
                exchange = exchange_on(port, market)
                try:
                    symbol = "BTCUSDT-PERP" if market == "linear" else SPOT
                    rules = await exchange.load_markets([symbol])
                    assert list(rules) == [symbol]
                    assert bool(exchange._mode_checked) is (market == "linear")
                finally:
                    await exchange.close()
        finally:
            await sim.close()

    asyncio.run(main())


def test_load_markets_refuses_a_perpetual_account_in_hedge_mode() -> None:
    async def main() -> None:
        _, sim = new_venue()
        try:
            async with emulator(sim) as (emu, port):
                emu.dual_side_position = True
                exchange = exchange_on(port, "linear")
                try:
                    with pytest.raises(errors.ConfigError, match="hedge") as refused:
                        await exchange.load_markets(["BTCUSDT-PERP"])
                    assert isinstance(refused.value, errors.OperationalError)  # the engine halts
                    emu.dual_side_position = False  # switched at the venue: asked again
                    assert list(await exchange.load_markets(["BTCUSDT-PERP"])) == ["BTCUSDT-PERP"]
                finally:
                    await exchange.close()
        finally:
            await sim.close()

    asyncio.run(main())


def exchange_on(port: int, market: str) -> CcxtExchange:
    return binance_client(port, market)
