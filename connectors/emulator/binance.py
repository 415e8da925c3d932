"""A loopback server speaking Binance's spot REST and WebSocket dialect over the simulated venue.

Owns: translating Binance requests (paths, form parameters, HMAC-SHA256 signatures, error codes)
into `SimulatedExchange` calls and its events into Binance's stream messages. Must not: match
orders or keep balances itself (the simulated venue does), or answer anything it does not
implement with a made-up success: an unknown endpoint gets an error naming it.

What the real ccxt binance client needs, and nothing more:
- REST `/api/v3`: ping, time, exchangeInfo, klines, ticker/24hr, ticker/bookTicker,
  ticker/price, order (POST/GET/DELETE), openOrders (GET/DELETE), myTrades, account.
- Market streams on `/ws` (and `/ws/<n>`, as ccxt numbers its connections): SUBSCRIBE to
  `<symbol>@ticker`, `@miniTicker`, `@bookTicker`, `@kline_<interval>`.
- The user data stream on the WebSocket API `/ws-api/v3` (`userDataStream.subscribe.signature`,
  how ccxt subscribes for spot): `executionReport` and `outboundAccountPosition` events.

Client ids are Binance's: unique among open orders only, so a finished order's id is accepted
again for a new order (`wire.REUSED`), and a lookup by it finds the newest.

Faults injected into the simulated venue come out as Binance does them: 429 with Retry-After,
503, `-1007` "execution status unknown" when an order was accepted but the answer was lost; and
`streams.drop(...)` closes, silences or loses messages on the WebSocket side.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from connectors.emulator import wire
from connectors.emulator.streams import StreamsMixin, UserSocket
from connectors.simulated.exchange import SimulatedExchange
from mm.core.model import (
    MarketRules,
    OrderRequest,
    Position,
    Side,
)
from mm.errors import (
    MMError,
    OrderNotFound,
)

log = logging.getLogger(__name__)


@dataclass
class StreamFaults:
    """Faults of the WebSocket side, set by tests: the next user-data events (or, for the
    market ones, the next ticks) are affected."""

    close_sockets: int = 0  # close this many user-data sockets at the next event
    silence: bool = False  # keep sockets open but send nothing (a dead connection)
    drop_user_events: int = 0  # lose this many user-data events
    close_market_sockets: int = 0  # close this many market-data sockets at the next tick
    silence_markets: bool = False  # market-data sockets stay open but get nothing


class BinanceEmulator(StreamsMixin):
    def __init__(self, sim: SimulatedExchange, api_key: str, api_secret: str) -> None:
        self.sim = sim
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.faults = StreamFaults()
        self._users: list[UserSocket] = []  # spot: WebSocket API subscriptions
        self._futures_users: list[UserSocket] = []  # USD-M: listen-key sockets
        self._listen_keys: set[str] = set()
        self._markets: list[tuple[str, set[str], asyncio.Queue[dict[str, Any] | None]]] = []
        self._reported: dict[str, tuple[Decimal, Decimal]] = {}  # cid -> (filled, fee) sent
        self._newest: dict[str, str] = {}  # a reused Binance client id -> its newest order's id
        self._fills_sent: dict[str, int] = {}  # symbol -> fills turned into events
        self._tasks: list[asyncio.Task[None]] = []
        self.requests = 0
        self.dual_side_position = False  # the account's USD-M position mode: one-way unless set
        self.app = Starlette(
            routes=[
                Route("/api/v3/ping", self._ping),
                Route("/api/v3/time", self._time),
                Route("/api/v3/exchangeInfo", self._exchange_info),
                Route("/api/v3/klines", self._klines),
                Route("/api/v3/ticker/24hr", self._ticker),
                Route("/api/v3/ticker/bookTicker", self._book_ticker),
                Route("/api/v3/ticker/price", self._price),
                Route("/api/v3/order", self._order, methods=["GET", "POST", "DELETE"]),
                Route("/api/v3/openOrders", self._open_orders, methods=["GET", "DELETE"]),
                Route("/api/v3/myTrades", self._my_trades),
                Route("/api/v3/account", self._account),
                # USD-M futures: the same handlers, symbols mapped to the simulated perpetuals
                Route("/fapi/v1/ping", self._ping),
                Route("/fapi/v1/time", self._time),
                Route("/fapi/v1/exchangeInfo", self._exchange_info),
                Route("/fapi/v1/klines", self._klines),
                Route("/fapi/v1/ticker/24hr", self._ticker),
                Route("/fapi/v1/ticker/bookTicker", self._book_ticker),
                Route("/fapi/v1/ticker/price", self._price),
                Route("/fapi/v1/order", self._order, methods=["GET", "POST", "DELETE"]),
                Route("/fapi/v1/openOrders", self._open_orders, methods=["GET"]),
                Route("/fapi/v1/allOpenOrders", self._open_orders, methods=["DELETE"]),
                Route("/fapi/v1/userTrades", self._my_trades),
                Route("/fapi/v2/account", self._futures_account),
                Route("/fapi/v3/account", self._futures_account),
                Route("/fapi/v2/positionRisk", self._position_risk),
                Route("/fapi/v3/positionRisk", self._position_risk),
                Route("/fapi/v1/leverageBracket", self._leverage_bracket),
                Route("/fapi/v1/positionSide/dual", self._position_side_dual),
                Route("/fapi/v1/listenKey", self._listen_key, methods=["POST", "PUT", "DELETE"]),
                Route(
                    "/{path:path}",
                    self._unsupported,
                    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                ),
                WebSocketRoute("/ws-api/v3", self._ws_api),
                WebSocketRoute("/ws", self._ws_market),
                WebSocketRoute("/ws/{index}", self._ws_market),
                WebSocketRoute("/market/ws", self._ws_market),
                WebSocketRoute("/market/ws/{index}", self._ws_market),
                WebSocketRoute("/public/ws", self._ws_market),
                WebSocketRoute("/public/ws/{index}", self._ws_market),
                WebSocketRoute("/private/ws", self._ws_private),
            ],
            lifespan=self._lifespan,
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._tasks.append(asyncio.create_task(self._forward_orders(), name="emu-orders"))
        self._tasks.append(asyncio.create_task(self._forward_prices(), name="emu-prices"))
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def revoke_key(self) -> None:
        """The account's API key is deleted (a fault for tests): every later request with it
        gets -2015, listen keys die and the user-data sockets are closed."""
        self.api_key = f"revoked-{uuid.uuid4().hex}"
        self._listen_keys.clear()
        for users in (self._users, self._futures_users):
            for socket in list(users):
                users.remove(socket)
                socket.queue.put_nowait(None)  # its sender closes the socket

    # -- plumbing ----------------------------------------------------------------------------------
    async def _params(self, request: Request, *, signed: bool) -> dict[str, str]:
        body = (await request.body()).decode()
        query = request.url.query
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        if signed:
            self._check_key(request.headers.get("X-MBX-APIKEY"))
            self._check_signature(query + body if query and body else query or body, params)
        return params

    def _check_key(self, key: str | None) -> None:
        if not key:
            raise wire.BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise wire.BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def _check_signature(self, total: str, params: dict[str, str]) -> None:
        signature = params.get("signature")
        payload, marker, _ = total.rpartition("&signature=")
        if signature is None or not marker:
            raise wire.BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise wire.BinanceError(400, -1022, "Signature for this request is not valid.")
        self._check_timestamp(params)

    @staticmethod
    def _check_timestamp(params: dict[str, str]) -> None:
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", wire.RECV_WINDOW_MS))
        except (KeyError, ValueError):
            raise wire.BinanceError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent."
            ) from None
        if abs(time.time() * 1000 - stamp) > window:
            raise wire.BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def _rules(self, symbol: str | None, family: str = wire.SPOT) -> MarketRules:
        """The simulated market a wire symbol names: `BTCUSDT` on /api is the spot market,
        on /fapi the perpetual (`BTCUSDT-PERP` in the simulated venue)."""
        if symbol is None:
            raise wire.BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        rules = self.sim._rules.get(symbol + wire.PERP if family == wire.FUTURES else symbol)
        if rules is None or symbol.endswith(wire.PERP):
            raise wire.BinanceError(400, -1121, "Invalid symbol.")
        return rules

    @staticmethod
    def _family(request: Request) -> str:
        return wire.FUTURES if request.url.path.startswith("/fapi") else wire.SPOT

    async def _answer(self, request: Request, handler: Callable[[], Awaitable[Any]]) -> Response:
        self.requests += 1
        try:
            return JSONResponse(await handler())
        except wire.BinanceError as e:
            return e.response()
        except MMError as e:
            return wire.from_mm(e, self._family(request)).response()

    # -- public REST -------------------------------------------------------------------------------
    async def _ping(self, request: Request) -> Response:
        return await self._answer(request, _empty)

    async def _time(self, request: Request) -> Response:
        async def handle() -> Any:
            return {"serverTime": int(time.time() * 1000)}

        return await self._answer(request, handle)

    async def _exchange_info(self, request: Request) -> Response:
        async def handle() -> Any:
            params = dict(request.query_params)
            wanted = wire.symbol_list(params)
            futures = self._family(request) == wire.FUTURES
            symbols = [
                wire.futures_info(r) if futures else wire.symbol_info(r)
                for s, r in sorted(self.sim._rules.items())
                if s.endswith(wire.PERP) == futures and (wanted is None or wire.wire(s) in wanted)
            ]
            return {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }

        return await self._answer(request, handle)

    async def _klines(self, request: Request) -> Response:
        async def handle() -> Any:
            params = dict(request.query_params)
            rules = self._rules(params.get("symbol"), self._family(request))
            interval = params.get("interval", "")
            if interval not in wire.INTERVAL_MS:
                raise wire.BinanceError(400, -1120, "Invalid interval.")
            since = int(params["startTime"]) if "startTime" in params else None
            limit = min(int(params.get("limit", 500)), 1000)
            candles = await self.sim.fetch_klines(rules.symbol, interval, since, limit)
            step = wire.INTERVAL_MS[interval]
            return [
                [
                    c.ts_ms,
                    wire.s(c.open),
                    wire.s(c.high),
                    wire.s(c.low),
                    wire.s(c.close),
                    wire.s(c.volume),
                    c.ts_ms + step - 1,
                    "0",
                    0,
                    "0",
                    "0",
                    "0",
                ]
                for c in candles
            ]

        return await self._answer(request, handle)

    def _last(self, symbol: str) -> Decimal:
        return self.sim.last_price(symbol)

    async def _ticker(self, request: Request) -> Response:
        async def handle() -> Any:
            rules = self._rules(request.query_params.get("symbol"), self._family(request))
            return self._ticker_json(rules, int(time.time() * 1000))

        return await self._answer(request, handle)

    def _ticker_json(
        self, rules: MarketRules, now: int, last: Decimal | None = None
    ) -> dict[str, Any]:
        """A 24h ticker at `last` (default: the venue's last price now)."""
        last = self._last(rules.symbol) if last is None else last
        bid, ask = last - rules.tick_size, last + rules.tick_size
        return {
            "symbol": wire.wire(rules.symbol),
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": wire.s(last),
            "prevClosePrice": wire.s(last),
            "lastPrice": wire.s(last),
            "lastQty": "0",
            "bidPrice": wire.s(bid),
            "bidQty": "1",
            "askPrice": wire.s(ask),
            "askQty": "1",
            "openPrice": wire.s(last),
            "highPrice": wire.s(last),
            "lowPrice": wire.s(last),
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }

    async def _book_ticker(self, request: Request) -> Response:
        async def handle() -> Any:
            rules = self._rules(request.query_params.get("symbol"), self._family(request))
            last = self._last(rules.symbol)
            return {
                "symbol": wire.wire(rules.symbol),
                "bidPrice": wire.s(last - rules.tick_size),
                "bidQty": "1",
                "askPrice": wire.s(last + rules.tick_size),
                "askQty": "1",
            }

        return await self._answer(request, handle)

    async def _price(self, request: Request) -> Response:
        async def handle() -> Any:
            rules = self._rules(request.query_params.get("symbol"), self._family(request))
            return {"symbol": wire.wire(rules.symbol), "price": wire.s(self._last(rules.symbol))}

        return await self._answer(request, handle)

    # -- signed REST -------------------------------------------------------------------------------
    async def _order(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            family = self._family(request)
            rules = self._rules(params.get("symbol"), family)
            if request.method == "POST":
                return await self._place(rules, params, family)
            client_id = self._client_id(rules, params)
            if request.method == "DELETE":
                try:
                    report = await self.sim.cancel_order(rules.symbol, client_id)
                except OrderNotFound:
                    raise wire.BinanceError(400, -2011, "Unknown order sent.") from None
                return wire.order_json(report, family)
            return wire.order_json(await self.sim.fetch_order(rules.symbol, client_id), family)

        return await self._answer(request, handle)

    def _client_id(self, rules: MarketRules, params: dict[str, str]) -> str:
        """The simulated order a request names; by client id, the newest order with that id."""
        if "origClientOrderId" in params:
            return self._newest.get(params["origClientOrderId"], params["origClientOrderId"])
        if "orderId" in params:
            for order in self.sim.orders(rules.symbol):
                if order.exchange_id == params["orderId"]:
                    return order.client_id
            raise wire.BinanceError(400, -2013, "Order does not exist.")
        raise wire.BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent.")

    async def _place(self, rules: MarketRules, params: dict[str, str], family: str) -> Any:
        kind = params.get("type")
        allowed = ("LIMIT",) if family == wire.FUTURES else ("LIMIT", "LIMIT_MAKER")
        if kind not in allowed:
            supported = " and ".join(allowed)
            raise wire.BinanceError(
                400, -1116, f"Invalid orderType (the emulator supports {supported}, got {kind})."
            )
        tif = params.get("timeInForce", "GTC")
        if tif not in (("GTC", "GTX") if family == wire.FUTURES else ("GTC",)):
            raise wire.BinanceError(
                400, -1115, f"Invalid timeInForce {tif} (the emulator: GTC, and GTX on futures)."
            )
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        if reduce_only and family == wire.SPOT:
            raise wire.BinanceError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(params.get("side", ""))
        if side is None:
            raise wire.BinanceError(400, -1117, "Invalid side.")
        given = params.get("newClientOrderId") or f"emu{uuid.uuid4().hex[:20]}"
        client_id = self._sim_id_for_new(given)
        try:
            report = await self.sim.place_order(
                OrderRequest(
                    rules.symbol,
                    client_id,
                    side,
                    wire.decimal(params, "price"),
                    wire.decimal(params, "quantity"),
                    post_only=kind == "LIMIT_MAKER" or tif == "GTX",
                    reduce_only=reduce_only,
                )
            )
        finally:
            if client_id != given and client_id in self.sim._orders:  # accepted (maybe unsaid)
                self._newest[given] = client_id
        out = wire.order_json(report, family)
        if family == wire.FUTURES:
            return out  # USD-M answers with the order alone
        out["transactTime"] = report.ts_ms
        out["fills"] = [
            {
                "price": wire.s(f.price),
                "qty": wire.s(f.qty),
                "commission": wire.s(f.fee),
                "commissionAsset": rules.quote,
                "tradeId": int(f.trade_id),
            }
            for f in self.sim._fills[rules.symbol]
            if f.client_id == client_id
        ]
        return out

    def _sim_id_for_new(self, client_id: str) -> str:
        """The simulated venue's id for a new order with Binance client id `client_id`: the id
        itself, unless an order with it exists and is finished (Binance accepts the id again;
        while that order is open, the venue refuses the duplicate as Binance does)."""
        newest = self._newest.get(client_id, client_id)
        order = self.sim._orders.get(newest)
        if order is None or not order.status.is_terminal:
            return newest
        generation = int(newest.split(wire.REUSED)[1]) + 1 if newest != client_id else 2
        return f"{client_id}{wire.REUSED}{generation}"

    async def _open_orders(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            family = self._family(request)
            rules = self._rules(params.get("symbol"), family)
            if request.method == "DELETE":
                cancelled = await self.sim.cancel_all(rules.symbol)
                if family == wire.FUTURES:
                    return {"code": 200, "msg": "The operation of cancel all open order is done."}
                if not cancelled:
                    raise wire.BinanceError(400, -2011, "Unknown order sent.")
                return [wire.order_json(r, family) for r in cancelled]
            opened = await self.sim.fetch_open_orders(rules.symbol)
            return [wire.order_json(r, family) for r in opened]

        return await self._answer(request, handle)

    async def _my_trades(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            rules = self._rules(params.get("symbol"), self._family(request))
            since = int(params.get("startTime", 0))
            from_id = int(params["fromId"]) if "fromId" in params else None
            order_id = params.get("orderId")
            limit = min(int(params.get("limit", 500)), 1000)
            fills = await self.sim.fetch_fills(rules.symbol, since)
            fills = [
                f
                for f in fills
                if (from_id is None or int(f.trade_id) >= from_id)
                and (order_id is None or f.exchange_id == order_id)
            ]
            return [wire.trade_json(f, rules, self._family(request)) for f in fills[:limit]]

        return await self._answer(request, handle)

    async def _account(self, request: Request) -> Response:
        async def handle() -> Any:
            await self._params(request, signed=True)
            balances = await self.sim.fetch_balances()
            return {
                "makerCommission": 0,
                "takerCommission": 0,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": False,
                "updateTime": int(time.time() * 1000),
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "balances": [
                    {"asset": b.asset, "free": wire.s(b.free), "locked": wire.s(b.locked)}
                    for b in balances.values()
                ],
            }

        return await self._answer(request, handle)

    async def _unsupported(self, request: Request) -> Response:
        self.requests += 1
        return JSONResponse(
            {
                "code": -1000,
                "msg": f"The emulator does not implement {request.method} "
                f"/{request.path_params['path']}.",
            },
            404,
        )

    # -- USD-M futures only ----------------------------------------------------------------------
    async def _futures_account(self, request: Request) -> Response:
        async def handle() -> Any:
            await self._params(request, signed=True)
            balances = await self.sim.fetch_balances()
            positions = await self._positions()
            now = int(time.time() * 1000)
            assets = [
                {
                    "asset": b.asset,
                    "walletBalance": wire.s(b.total),
                    "unrealizedProfit": "0",
                    "marginBalance": wire.s(b.total),
                    "maintMargin": "0",
                    "initialMargin": wire.s(b.locked),
                    "positionInitialMargin": "0",
                    "openOrderInitialMargin": wire.s(b.locked),
                    "crossWalletBalance": wire.s(b.total),
                    "crossUnPnl": "0",
                    "availableBalance": wire.s(b.free),
                    "maxWithdrawAmount": wire.s(b.free),
                    "updateTime": now,
                }
                for b in balances.values()
            ]
            usdt = balances.get("USDT")
            total = wire.s(usdt.total) if usdt else "0"
            return {
                "totalInitialMargin": wire.s(usdt.locked) if usdt else "0",
                "totalMaintMargin": "0",
                "totalWalletBalance": total,
                "totalUnrealizedProfit": "0",
                "totalMarginBalance": total,
                "totalPositionInitialMargin": "0",
                "totalOpenOrderInitialMargin": wire.s(usdt.locked) if usdt else "0",
                "totalCrossWalletBalance": total,
                "totalCrossUnPnl": "0",
                "availableBalance": wire.s(usdt.free) if usdt else "0",
                "maxWithdrawAmount": wire.s(usdt.free) if usdt else "0",
                "assets": assets,
                "positions": [wire.position_json(p, now) for p in positions],
            }

        return await self._answer(request, handle)

    async def _positions(self) -> list[Position]:
        perps = [s for s in self.sim._rules if s.endswith(wire.PERP)]
        return [p for p in (await self.sim.fetch_positions(perps)).values() if p.qty]

    async def _position_risk(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            now = int(time.time() * 1000)
            positions = await self._positions()
            if "symbol" in params:
                rules = self._rules(params["symbol"], wire.FUTURES)
                positions = [p for p in positions if p.symbol == rules.symbol]
            return [wire.position_json(p, now, self._last(p.symbol)) for p in positions]

        return await self._answer(request, handle)

    async def _position_side_dual(self, request: Request) -> Response:
        """GET: the account's position mode (`true`: hedge, long and short apart; `false`:
        one-way). Changing it (POST) is not implemented: set `dual_side_position`."""

        async def handle() -> Any:
            await self._params(request, signed=True)
            return {"dualSidePosition": self.dual_side_position}

        return await self._answer(request, handle)

    async def _leverage_bracket(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            symbols = [s for s in self.sim._rules if s.endswith(wire.PERP)]
            if "symbol" in params:
                symbols = [self._rules(params["symbol"], wire.FUTURES).symbol]
            bracket = {
                "bracket": 1,
                "initialLeverage": 20,
                "notionalCap": 100_000_000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.004,
                "cum": 0.0,
            }
            return [{"symbol": wire.wire(s), "brackets": [bracket]} for s in symbols]

        return await self._answer(request, handle)

    async def _listen_key(self, request: Request) -> Response:
        """USD-M user data stream key: API key only (no signature), as Binance does. POST answers
        the account's active key while there is one ("if there is an active listenKey, it will
        be returned and its validity extended"), a new one otherwise; a revoked API key gets
        -2015 (401)."""

        async def handle() -> Any:
            self._check_key(request.headers.get("X-MBX-APIKEY"))
            if request.method == "POST":
                key = next(iter(self._listen_keys), None) or uuid.uuid4().hex + uuid.uuid4().hex
                self._listen_keys.add(key)
                return {"listenKey": key}
            return {}

        return await self._answer(request, handle)


async def _empty() -> Any:
    return {}
