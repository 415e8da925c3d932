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

Faults injected into the simulated venue come out as Binance does them: 429 with Retry-After,
503, `-1007` "execution status unknown" when an order was accepted but the answer was lost; and
`streams.drop(...)` closes, silences or loses messages on the WebSocket side.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from connectors.simulated.exchange import SimulatedExchange
from mm.core.model import (
    Fill,
    MarketRules,
    OrderReport,
    OrderRequest,
    OrderStatus,
    Position,
    Side,
)
from mm.errors import (
    DuplicateOrder,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MMError,
    OrderNotFound,
    OrderRejected,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
    RequestTimeout,
)

log = logging.getLogger(__name__)
RECV_WINDOW_MS = 5_000
SPOT, FUTURES = "spot", "futures"
PERP = "-PERP"
STATUS = {
    OrderStatus.OPEN: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


class BinanceError(Exception):
    """An error answered the way Binance answers it."""

    def __init__(self, http: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.http, self.code, self.msg, self.headers = http, code, msg, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "msg": self.msg}, self.http, self.headers)


def _from_mm(error: MMError, family: str = "spot") -> BinanceError:
    """The venue's refusal in Binance's words (codes from Binance's error documentation)."""
    if family == FUTURES:
        futures = _futures_error(error)
        if futures is not None:
            return futures
    if isinstance(error, RateLimited):
        retry = max(1, round(error.retry_after_s or 1))
        return BinanceError(
            429, -1003, "Too many requests; current limit is exceeded.", {"Retry-After": str(retry)}
        )
    if isinstance(error, ExchangeUnavailable):
        return BinanceError(503, -1001, "Internal error; unable to process your request.")
    if isinstance(error, RequestTimeout):
        return BinanceError(
            503,
            -1007,
            "Timeout waiting for response from backend server. "
            "Send status unknown; execution status unknown.",
        )
    if isinstance(error, DuplicateOrder):
        return BinanceError(400, -2010, "Duplicate order sent.")
    if isinstance(error, PostOnlyRejected):
        return BinanceError(400, -2010, "Order would immediately match and take.")
    if isinstance(error, InsufficientFunds):
        return BinanceError(400, -2010, "Account has insufficient balance for requested action.")
    if isinstance(error, OrderNotFound):
        return BinanceError(400, -2013, "Order does not exist.")
    if isinstance(error, InvalidOrder):
        return BinanceError(400, -1013, f"Filter failure: {error}")
    if isinstance(error, OrderRejected):
        return BinanceError(400, -2010, f"New order rejected: {error}")
    return BinanceError(400, -1000, f"An unknown error occurred: {error}")


def _futures_error(error: MMError) -> BinanceError | None:
    """USD-M futures words for the refusals that differ from spot."""
    if isinstance(error, DuplicateOrder):
        return BinanceError(400, -4116, "ClientOrderId is duplicated.")
    if isinstance(error, PostOnlyRejected):
        return BinanceError(
            400,
            -5022,
            "Due to the order could not be executed as maker, the Post Only order will be "
            "rejected. The order will not be recorded in the order history",
        )
    if isinstance(error, ReduceOnlyRejected):
        return BinanceError(400, -2022, "ReduceOnly Order is rejected.")
    if isinstance(error, InsufficientFunds):
        return BinanceError(400, -2019, "Margin is insufficient.")
    return None


def _wire(symbol: str) -> str:
    """The symbol as Binance writes it: the perpetual `BTCUSDT-PERP` is `BTCUSDT` on /fapi."""
    return symbol.removesuffix(PERP)


def _s(value: Decimal) -> str:
    return format(value, "f")


def _decimal(params: dict[str, str], key: str) -> Decimal:
    raw = params.get(key)
    if raw is None:
        raise BinanceError(400, -1102, f"Mandatory parameter '{key}' was not sent.")
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{key}'.") from None
    if not value.is_finite() or value <= 0:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{key}'.")
    return value


# -- the emulator ---------------------------------------------------------------------------------
@dataclass
class StreamFaults:
    """Faults of the WebSocket side, set by tests: the next user-data events are affected."""

    close_sockets: int = 0  # close this many user-data sockets at the next event
    silence: bool = False  # keep sockets open but send nothing (a dead connection)
    drop_user_events: int = 0  # lose this many user-data events


@dataclass
class _UserSocket:
    ws: WebSocket
    subscription_id: int
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


class BinanceEmulator:
    def __init__(self, sim: SimulatedExchange, api_key: str, api_secret: str) -> None:
        self.sim = sim
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.faults = StreamFaults()
        self._users: list[_UserSocket] = []  # spot: WebSocket API subscriptions
        self._futures_users: list[_UserSocket] = []  # USD-M: listen-key sockets
        self._listen_keys: set[str] = set()
        self._markets: list[tuple[str, set[str], asyncio.Queue[dict[str, Any] | None]]] = []
        self._reported: dict[str, tuple[Decimal, Decimal]] = {}  # cid -> (filled, fee) sent
        self._fills_sent: dict[str, int] = {}  # symbol -> fills turned into events
        self._tasks: list[asyncio.Task[None]] = []
        self.requests = 0
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
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def _check_signature(self, total: str, params: dict[str, str]) -> None:
        signature = params.get("signature")
        payload, marker, _ = total.rpartition("&signature=")
        if signature is None or not marker:
            raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        self._check_timestamp(params)

    @staticmethod
    def _check_timestamp(params: dict[str, str]) -> None:
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", RECV_WINDOW_MS))
        except (KeyError, ValueError):
            raise BinanceError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent."
            ) from None
        if abs(time.time() * 1000 - stamp) > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def _rules(self, symbol: str | None, family: str = SPOT) -> MarketRules:
        """The simulated market a wire symbol names: `BTCUSDT` on /api is the spot market,
        on /fapi the perpetual (`BTCUSDT-PERP` in the simulated venue)."""
        if symbol is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        rules = self.sim._rules.get(symbol + PERP if family == FUTURES else symbol)
        if rules is None or symbol.endswith(PERP):
            raise BinanceError(400, -1121, "Invalid symbol.")
        return rules

    @staticmethod
    def _family(request: Request) -> str:
        return FUTURES if request.url.path.startswith("/fapi") else SPOT

    async def _answer(self, request: Request, handler: Callable[[], Awaitable[Any]]) -> Response:
        self.requests += 1
        try:
            return JSONResponse(await handler())
        except BinanceError as e:
            return e.response()
        except MMError as e:
            return _from_mm(e, self._family(request)).response()

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
            wanted = _symbol_list(params)
            futures = self._family(request) == FUTURES
            symbols = [
                _futures_info(r) if futures else _symbol_info(r)
                for s, r in sorted(self.sim._rules.items())
                if s.endswith(PERP) == futures and (wanted is None or _wire(s) in wanted)
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
            if interval not in INTERVAL_MS:
                raise BinanceError(400, -1120, "Invalid interval.")
            since = int(params["startTime"]) if "startTime" in params else None
            limit = min(int(params.get("limit", 500)), 1000)
            candles = await self.sim.fetch_klines(rules.symbol, interval, since, limit)
            step = INTERVAL_MS[interval]
            return [
                [
                    c.ts_ms,
                    _s(c.open),
                    _s(c.high),
                    _s(c.low),
                    _s(c.close),
                    _s(c.volume),
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
            "symbol": _wire(rules.symbol),
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": _s(last),
            "prevClosePrice": _s(last),
            "lastPrice": _s(last),
            "lastQty": "0",
            "bidPrice": _s(bid),
            "bidQty": "1",
            "askPrice": _s(ask),
            "askQty": "1",
            "openPrice": _s(last),
            "highPrice": _s(last),
            "lowPrice": _s(last),
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
                "symbol": _wire(rules.symbol),
                "bidPrice": _s(last - rules.tick_size),
                "bidQty": "1",
                "askPrice": _s(last + rules.tick_size),
                "askQty": "1",
            }

        return await self._answer(request, handle)

    async def _price(self, request: Request) -> Response:
        async def handle() -> Any:
            rules = self._rules(request.query_params.get("symbol"), self._family(request))
            return {"symbol": _wire(rules.symbol), "price": _s(self._last(rules.symbol))}

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
                    raise BinanceError(400, -2011, "Unknown order sent.") from None
                return _order_json(report, family)
            return _order_json(await self.sim.fetch_order(rules.symbol, client_id), family)

        return await self._answer(request, handle)

    def _client_id(self, rules: MarketRules, params: dict[str, str]) -> str:
        if "origClientOrderId" in params:
            return params["origClientOrderId"]
        if "orderId" in params:
            for order in self.sim.orders(rules.symbol):
                if order.exchange_id == params["orderId"]:
                    return order.client_id
            raise BinanceError(400, -2013, "Order does not exist.")
        raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent.")

    async def _place(self, rules: MarketRules, params: dict[str, str], family: str) -> Any:
        kind = params.get("type")
        allowed = ("LIMIT",) if family == FUTURES else ("LIMIT", "LIMIT_MAKER")
        if kind not in allowed:
            supported = " and ".join(allowed)
            raise BinanceError(
                400, -1116, f"Invalid orderType (the emulator supports {supported}, got {kind})."
            )
        tif = params.get("timeInForce", "GTC")
        if tif not in (("GTC", "GTX") if family == FUTURES else ("GTC",)):
            raise BinanceError(
                400, -1115, f"Invalid timeInForce {tif} (the emulator: GTC, and GTX on futures)."
            )
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        if reduce_only and family == SPOT:
            raise BinanceError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(params.get("side", ""))
        if side is None:
            raise BinanceError(400, -1117, "Invalid side.")
        client_id = params.get("newClientOrderId") or f"emu{uuid.uuid4().hex[:20]}"
        report = await self.sim.place_order(
            OrderRequest(
                rules.symbol,
                client_id,
                side,
                _decimal(params, "price"),
                _decimal(params, "quantity"),
                post_only=kind == "LIMIT_MAKER" or tif == "GTX",
                reduce_only=reduce_only,
            )
        )
        out = _order_json(report, family)
        if family == FUTURES:
            return out  # USD-M answers with the order alone
        out["transactTime"] = report.ts_ms
        out["fills"] = [
            {
                "price": _s(f.price),
                "qty": _s(f.qty),
                "commission": _s(f.fee),
                "commissionAsset": rules.quote,
                "tradeId": int(f.trade_id),
            }
            for f in self.sim._fills[rules.symbol]
            if f.client_id == client_id
        ]
        return out

    async def _open_orders(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            family = self._family(request)
            rules = self._rules(params.get("symbol"), family)
            if request.method == "DELETE":
                cancelled = await self.sim.cancel_all(rules.symbol)
                if family == FUTURES:
                    return {"code": 200, "msg": "The operation of cancel all open order is done."}
                if not cancelled:
                    raise BinanceError(400, -2011, "Unknown order sent.")
                return [_order_json(r, family) for r in cancelled]
            opened = await self.sim.fetch_open_orders(rules.symbol)
            return [_order_json(r, family) for r in opened]

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
            return [_trade_json(f, rules, self._family(request)) for f in fills[:limit]]

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
                    {"asset": b.asset, "free": _s(b.free), "locked": _s(b.locked)}
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
                    "walletBalance": _s(b.total),
                    "unrealizedProfit": "0",
                    "marginBalance": _s(b.total),
                    "maintMargin": "0",
                    "initialMargin": _s(b.locked),
                    "positionInitialMargin": "0",
                    "openOrderInitialMargin": _s(b.locked),
                    "crossWalletBalance": _s(b.total),
                    "crossUnPnl": "0",
                    "availableBalance": _s(b.free),
                    "maxWithdrawAmount": _s(b.free),
                    "updateTime": now,
                }
                for b in balances.values()
            ]
            usdt = balances.get("USDT")
            total = _s(usdt.total) if usdt else "0"
            return {
                "totalInitialMargin": _s(usdt.locked) if usdt else "0",
                "totalMaintMargin": "0",
                "totalWalletBalance": total,
                "totalUnrealizedProfit": "0",
                "totalMarginBalance": total,
                "totalPositionInitialMargin": "0",
                "totalOpenOrderInitialMargin": _s(usdt.locked) if usdt else "0",
                "totalCrossWalletBalance": total,
                "totalCrossUnPnl": "0",
                "availableBalance": _s(usdt.free) if usdt else "0",
                "maxWithdrawAmount": _s(usdt.free) if usdt else "0",
                "assets": assets,
                "positions": [_position_json(p, now) for p in positions],
            }

        return await self._answer(request, handle)

    async def _positions(self) -> list[Position]:
        perps = [s for s in self.sim._rules if s.endswith(PERP)]
        return [p for p in (await self.sim.fetch_positions(perps)).values() if p.qty]

    async def _position_risk(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            now = int(time.time() * 1000)
            positions = await self._positions()
            if "symbol" in params:
                rules = self._rules(params["symbol"], FUTURES)
                positions = [p for p in positions if p.symbol == rules.symbol]
            return [_position_json(p, now, self._last(p.symbol)) for p in positions]

        return await self._answer(request, handle)

    async def _leverage_bracket(self, request: Request) -> Response:
        async def handle() -> Any:
            params = await self._params(request, signed=True)
            symbols = [s for s in self.sim._rules if s.endswith(PERP)]
            if "symbol" in params:
                symbols = [self._rules(params["symbol"], FUTURES).symbol]
            bracket = {
                "bracket": 1,
                "initialLeverage": 20,
                "notionalCap": 100_000_000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.004,
                "cum": 0.0,
            }
            return [{"symbol": _wire(s), "brackets": [bracket]} for s in symbols]

        return await self._answer(request, handle)

    async def _listen_key(self, request: Request) -> Response:
        """USD-M user data stream key: API key only (no signature), as Binance does."""

        async def handle() -> Any:
            self._check_key(request.headers.get("X-MBX-APIKEY"))
            if request.method == "POST":
                self._listen_keys.add(key := uuid.uuid4().hex + uuid.uuid4().hex)
                return {"listenKey": key}
            return {}

        return await self._answer(request, handle)

    async def _ws_private(self, ws: WebSocket) -> None:
        """USD-M user data: `/private/ws?listenKey=...` pushes ORDER_TRADE_UPDATE and
        ACCOUNT_UPDATE events."""
        if ws.query_params.get("listenKey") not in self._listen_keys:
            await ws.close(1008)
            return
        await ws.accept()
        socket = _UserSocket(ws, -1)
        self._futures_users.append(socket)
        sender = asyncio.create_task(_send_all(ws, socket.queue))
        try:
            while True:
                await ws.receive_text()  # clients send nothing that matters here
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._futures_users.remove(socket)
            sender.cancel()

    # -- WebSocket: market streams -----------------------------------------------------------------
    async def _ws_market(self, ws: WebSocket) -> None:
        await ws.accept()
        streams: set[str] = set()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=10_000)
        family = SPOT if ws.url.path.startswith("/ws") else FUTURES  # /market, /public: USD-M
        entry = (family, streams, queue)
        self._markets.append(entry)
        sender = asyncio.create_task(_send_all(ws, queue))
        try:
            while True:
                message = json.loads(await ws.receive_text())
                method, ident = message.get("method"), message.get("id")
                if method == "SUBSCRIBE":
                    streams.update(str(p) for p in message.get("params", []))
                    await queue.put({"result": None, "id": ident})
                elif method == "UNSUBSCRIBE":
                    streams.difference_update(str(p) for p in message.get("params", []))
                    await queue.put({"result": None, "id": ident})
                else:
                    await queue.put(
                        {"error": {"code": 2, "msg": f"Invalid request {method}"}, "id": ident}
                    )
        except (WebSocketDisconnect, json.JSONDecodeError):
            pass
        finally:
            self._markets.remove(entry)
            sender.cancel()

    async def _forward_prices(self) -> None:
        """Every tick of the venue -> ticker/miniTicker/bookTicker/kline events subscribed."""
        async for tick in self.sim.stream_prices(list(self.sim._rules)):
            if not self._markets:
                continue
            rules = self.sim._rules[tick.symbol]
            name = _wire(tick.symbol).lower()
            tick_family = FUTURES if tick.symbol.endswith(PERP) else SPOT
            for family, streams, queue in list(self._markets):
                if family != tick_family:
                    continue
                for stream in streams:
                    if not stream.startswith(name + "@"):
                        continue
                    event = self._market_event(
                        stream[len(name) + 1 :], rules, tick.price, tick.ts_ms
                    )
                    if event is not None and not queue.full():
                        queue.put_nowait(event)

    def _market_event(self, kind: str, rules: MarketRules, price: Decimal, now: int):
        symbol = _wire(rules.symbol)
        if kind in ("ticker", "miniTicker"):
            t = self._ticker_json(rules, now, price)  # the tick's own price, not the latest
            event = {
                "e": "24hrTicker" if kind == "ticker" else "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": t["lastPrice"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": "0",
                "q": "0",
            }
            if kind == "ticker":
                event.update(
                    {
                        "b": t["bidPrice"],
                        "B": "1",
                        "a": t["askPrice"],
                        "A": "1",
                        "p": "0",
                        "P": "0",
                        "w": t["lastPrice"],
                        "x": t["lastPrice"],
                        "Q": "0",
                        "O": t["openTime"],
                        "C": now,
                        "F": -1,
                        "L": -1,
                        "n": 0,
                    }
                )
            return event
        if kind == "bookTicker":
            return {
                "u": now,
                "s": symbol,
                "b": _s(price - rules.tick_size),
                "B": "1",
                "a": _s(price + rules.tick_size),
                "A": "1",
            }
        if kind.startswith("kline_"):
            interval = kind[len("kline_") :]
            step = INTERVAL_MS.get(interval)
            if step is None:
                return None
            start = now - now % step
            return {
                "e": "kline",
                "E": now,
                "s": symbol,
                "k": {
                    "t": start,
                    "T": start + step - 1,
                    "s": symbol,
                    "i": interval,
                    "f": -1,
                    "L": -1,
                    "o": _s(price),
                    "c": _s(price),
                    "h": _s(price),
                    "l": _s(price),
                    "v": "0",
                    "n": 0,
                    "x": False,
                    "q": "0",
                    "V": "0",
                    "Q": "0",
                    "B": "0",
                },
            }
        return None

    # -- WebSocket API: the user data stream -------------------------------------------------------
    async def _ws_api(self, ws: WebSocket) -> None:
        await ws.accept()
        socket: _UserSocket | None = None
        sender: asyncio.Task[None] | None = None
        try:
            while True:
                message = json.loads(await ws.receive_text())
                ident, method = message.get("id"), message.get("method")
                params = message.get("params") or {}
                if method != "userDataStream.subscribe.signature":
                    await ws.send_json(
                        {
                            "id": ident,
                            "status": 400,
                            "error": {
                                "code": -1000,
                                "msg": f"The emulator does not implement {method}.",
                            },
                        }
                    )
                    continue
                try:
                    self._check_key(params.get("apiKey"))
                    payload = "&".join(
                        f"{k}={v}" for k, v in sorted(params.items()) if k != "signature"
                    )
                    expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
                    if not hmac.compare_digest(expected, str(params.get("signature", ""))):
                        raise BinanceError(400, -1022, "Signature for this request is not valid.")
                    self._check_timestamp({k: str(v) for k, v in params.items()})
                except BinanceError as e:
                    await ws.send_json(
                        {"id": ident, "status": e.http, "error": {"code": e.code, "msg": e.msg}}
                    )
                    continue
                if socket is None:
                    socket = _UserSocket(ws, 0)
                    self._users.append(socket)
                    sender = asyncio.create_task(_send_all(ws, socket.queue))
                await socket.queue.put(
                    {
                        "id": ident,
                        "status": 200,
                        "result": {"subscriptionId": socket.subscription_id},
                    }
                )
        except (WebSocketDisconnect, json.JSONDecodeError, RuntimeError):
            pass
        finally:
            if socket is not None:
                with contextlib.suppress(ValueError):
                    self._users.remove(socket)
            if sender is not None:
                sender.cancel()

    async def _forward_orders(self) -> None:
        """Every order update of the venue -> executionReports (spot, on the WebSocket API) or
        ORDER_TRADE_UPDATEs (USD-M, on listen-key sockets), then the account's balances."""
        async for report in self.sim.stream_orders(list(self.sim._rules)):
            events = self._execution_reports(report)
            if not events:
                continue
            if report.symbol.endswith(PERP):
                events = [_futures_update(e, report) for e in events]
                events.append(await self._futures_account_update(report.ts_ms))
                await self._to_users(events, self._futures_users)
            else:
                events.append(await self._account_position(report.ts_ms))
                await self._to_users(events, self._users)

    async def _to_users(self, events: list[dict[str, Any]], users: list[_UserSocket]) -> None:
        f = self.faults
        if f.close_sockets:
            for socket in list(users)[: f.close_sockets]:
                f.close_sockets -= 1
                users.remove(socket)
                with contextlib.suppress(Exception):
                    await socket.ws.close(1006)
            return  # what happened meanwhile is lost with the socket
        if f.silence:
            return
        for event in events:
            if f.drop_user_events and event["e"] in ("executionReport", "ORDER_TRADE_UPDATE"):
                f.drop_user_events -= 1
                continue
            for socket in users:
                wrapped = (
                    event
                    if socket.subscription_id < 0
                    else {"subscriptionId": socket.subscription_id, "event": event}
                )
                socket.queue.put_nowait(wrapped)

    async def _futures_account_update(self, now: int) -> dict[str, Any]:
        balances = await self.sim.fetch_balances()
        positions = await self._positions()
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": "ORDER",
                "B": [
                    {"a": b.asset, "wb": _s(b.total), "cw": _s(b.total), "bc": "0"}
                    for b in balances.values()
                ],
                "P": [
                    {
                        "s": _wire(p.symbol),
                        "pa": _s(p.qty),
                        "ep": _s(p.entry_price),
                        "cr": "0",
                        "up": "0",
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                    for p in positions
                ],
            },
        }

    def _execution_reports(self, report: OrderReport) -> list[dict[str, Any]]:
        """One executionReport per new trade of the order (or one for a status change)."""
        rules = self.sim._rules[report.symbol]
        done_qty, done_fee = self._reported.get(report.client_id, (Decimal(0), Decimal(0)))
        trades = [f for f in self.sim._fills[report.symbol] if f.client_id == report.client_id]
        new = [f for f in trades if _cumulative(trades, f) > done_qty]
        events = []
        filled, fee = done_qty, done_fee
        for fill in new:
            filled += fill.qty
            fee += fill.fee
            status = "FILLED" if filled >= report.qty else "PARTIALLY_FILLED"
            events.append(_execution(report, rules, "TRADE", status, filled, fill))
        self._reported[report.client_id] = (filled, fee)
        if not new or report.status in (
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REJECTED,
        ):
            kind = {
                OrderStatus.OPEN: "NEW",
                OrderStatus.CANCELED: "CANCELED",
                OrderStatus.EXPIRED: "EXPIRED",
                OrderStatus.REJECTED: "REJECTED",
            }.get(report.status)
            if kind is not None:
                events.append(_execution(report, rules, kind, STATUS[report.status], filled, None))
        return events

    async def _account_position(self, now: int) -> dict[str, Any]:
        balances = await self.sim.fetch_balances()
        return {
            "e": "outboundAccountPosition",
            "E": now,
            "u": now,
            "B": [{"a": b.asset, "f": _s(b.free), "l": _s(b.locked)} for b in balances.values()],
        }


def _cumulative(trades: list[Fill], upto: Fill) -> Decimal:
    total = Decimal(0)
    for t in trades:
        total += t.qty
        if t is upto:
            break
    return total


def _execution(
    report: OrderReport,
    rules: MarketRules,
    kind: str,
    status: str,
    filled: Decimal,
    fill: Fill | None,
) -> dict[str, Any]:
    cost = report.avg_price * filled if report.avg_price else Decimal(0)
    return {
        "e": "executionReport",
        "E": report.ts_ms,
        "s": report.symbol,
        "c": report.client_id,
        "S": report.side.value,
        "o": "LIMIT_MAKER" if report.post_only else "LIMIT",
        "f": "GTC",
        "q": _s(report.qty),
        "p": _s(report.price),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": report.client_id if kind == "CANCELED" else "",
        "x": kind,
        "X": status,
        "r": "NONE",
        "i": int(report.exchange_id),
        "l": _s(fill.qty) if fill else "0",
        "z": _s(filled),
        "L": _s(fill.price) if fill else "0",
        "n": _s(fill.fee) if fill else "0",
        "N": rules.quote if fill else None,
        "T": fill.ts_ms if fill else report.ts_ms,
        "t": int(fill.trade_id) if fill else -1,
        "I": 0,
        "w": status in ("NEW", "PARTIALLY_FILLED"),
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": report.ts_ms,
        "Z": _s(cost),
        "Y": _s(fill.price * fill.qty) if fill else "0",
        "Q": "0",
        "W": report.ts_ms,
        "V": "NONE",
    }


def _futures_update(execution: dict[str, Any], report: OrderReport) -> dict[str, Any]:
    """A spot executionReport rewritten as USD-M's ORDER_TRADE_UPDATE."""
    e = execution
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": e["E"],
        "T": e["T"],
        "o": {
            "s": _wire(e["s"]),
            "c": e["c"],
            "S": e["S"],
            "o": "LIMIT",
            "f": "GTX" if e["o"] == "LIMIT_MAKER" else "GTC",
            "q": e["q"],
            "p": e["p"],
            "ap": _s(report.avg_price),
            "sp": "0",
            "x": e["x"],
            "X": e["X"],
            "i": e["i"],
            "l": e["l"],
            "z": e["z"],
            "L": e["L"],
            "N": e["N"] or "USDT",
            "n": e["n"],
            "T": e["T"],
            "t": e["t"],
            "b": "0",
            "a": "0",
            "m": e["m"],
            "R": report.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": "LIMIT",
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def _order_json(report: OrderReport, family: str = SPOT) -> dict[str, Any]:
    cost = report.avg_price * report.filled_qty
    common = {
        "symbol": _wire(report.symbol),
        "orderId": int(report.exchange_id),
        "clientOrderId": report.client_id,
        "price": _s(report.price),
        "origQty": _s(report.qty),
        "executedQty": _s(report.filled_qty),
        "status": STATUS[report.status],
        "side": report.side.value,
        "stopPrice": "0",
        "time": report.ts_ms,
        "updateTime": report.ts_ms,
        "selfTradePreventionMode": "NONE",
    }
    if family == FUTURES:
        return {
            **common,
            "avgPrice": _s(report.avg_price),
            "cumQty": _s(report.filled_qty),
            "cumQuote": _s(cost),
            "timeInForce": "GTX" if report.post_only else "GTC",
            "type": "LIMIT",
            "origType": "LIMIT",
            "reduceOnly": report.reduce_only,
            "closePosition": False,
            "positionSide": "BOTH",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "goodTillDate": 0,
        }
    return {
        **common,
        "orderListId": -1,
        "cummulativeQuoteQty": _s(cost),
        "timeInForce": "GTC",
        "type": "LIMIT_MAKER" if report.post_only else "LIMIT",
        "icebergQty": "0",
        "workingTime": report.ts_ms,
        "isWorking": report.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
        "origQuoteOrderQty": "0",
    }


def _trade_json(fill: Fill, rules: MarketRules, family: str = SPOT) -> dict[str, Any]:
    common = {
        "symbol": _wire(fill.symbol),
        "id": int(fill.trade_id),
        "orderId": int(fill.exchange_id),
        "price": _s(fill.price),
        "qty": _s(fill.qty),
        "quoteQty": _s(fill.price * fill.qty),
        "commission": _s(fill.fee),
        "commissionAsset": rules.quote,
        "time": fill.ts_ms,
    }
    if family == FUTURES:
        return {
            **common,
            "side": fill.side.value,
            "buyer": fill.side is Side.BUY,
            "maker": fill.is_maker,
            "positionSide": "BOTH",
            "realizedPnl": "0",
            "marginAsset": rules.quote,
        }
    return {
        **common,
        "orderListId": -1,
        "isBuyer": fill.side is Side.BUY,
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def _symbol_info(r: MarketRules) -> dict[str, Any]:
    return {
        "symbol": r.symbol,
        "status": "TRADING",
        "baseAsset": r.base,
        "baseAssetPrecision": 8,
        "quoteAsset": r.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _s(r.tick_size),
                "maxPrice": "10000000",
                "tickSize": _s(r.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _s(r.min_qty or r.lot_size),
                "maxQty": "9000000",
                "stepSize": _s(r.lot_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _s(r.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "90000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _futures_info(r: MarketRules) -> dict[str, Any]:
    return {
        "symbol": _wire(r.symbol),
        "pair": _wire(r.symbol),
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": r.base,
        "quoteAsset": r.quote,
        "marginAsset": r.quote,
        "pricePrecision": max(0, -r.tick_size.normalize().as_tuple().exponent),
        "quantityPrecision": max(0, -r.lot_size.normalize().as_tuple().exponent),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _s(r.tick_size),
                "maxPrice": "10000000",
                "tickSize": _s(r.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _s(r.min_qty or r.lot_size),
                "maxQty": "9000000",
                "stepSize": _s(r.lot_size),
            },
            {"filterType": "MIN_NOTIONAL", "notional": _s(r.min_notional)},
        ],
        "orderTypes": ["LIMIT"],
        "timeInForce": ["GTC", "GTX"],
    }


def _position_json(p: Position, now: int, mark: Decimal | None = None) -> dict[str, Any]:
    mark = p.entry_price if mark is None else mark
    return {
        "symbol": _wire(p.symbol),
        "positionSide": "BOTH",
        "positionAmt": _s(p.qty),
        "entryPrice": _s(p.entry_price),
        "breakEvenPrice": _s(p.entry_price),
        "markPrice": _s(mark),
        "unRealizedProfit": _s((mark - p.entry_price) * p.qty),
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": _s(mark * p.qty),
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": "0",
        "maintMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": now,
    }


def _symbol_list(params: dict[str, str]) -> set[str] | None:
    if "symbol" in params:
        return {params["symbol"]}
    if "symbols" in params:
        with contextlib.suppress(ValueError):
            return set(json.loads(params["symbols"]))
    return None


async def _empty() -> Any:
    return {}


async def _send_all(ws: WebSocket, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    with contextlib.suppress(Exception):
        while True:
            item = await queue.get()
            if item is None:
                return
            await ws.send_text(json.dumps(item))
