"""The exchange_connector: one `Exchange` served over gRPC (`opensqt.market_maker.v1`).

Owns: the grpc.aio server — the ExchangeService handlers, fan-out of the upstream streams to
every client, the grpc.health.v1 status, reflection, bearer-token auth and TLS. Must not: trade
or hold strategy state; it forwards to the wrapped exchange and translates.

- Requests are validated at the edge (symbols must be listed by the exchange, prices and
  quantities positive decimals, ids present): a bad request gets INVALID_ARGUMENT and never
  reaches the exchange. Exchange errors leave through the one table in `errors.py`.
- One upstream subscription per stream kind is shared by all clients (`fanout.Fanout`). A
  client that does not keep up is cut off with RESOURCE_EXHAUSTED; nobody else waits for it.
- Health: NOT_SERVING until the exchange answers its health check and the preload markets are
  loaded; back to NOT_SERVING as soon as an exchange call fails with "unavailable" or the
  periodic check fails.
- Auth: when a token is configured every call (health and reflection included) must carry
  `authorization: Bearer <token>`; compared in constant time; never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import re
import stat
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from connectors.remote import convert
from connectors.remote.errors import code_for, trailers_for
from connectors.remote.fanout import Fanout, Subscriber
from connectors.remote.generated import events_pb2 as ev
from connectors.remote.generated import exchange_service_pb2 as api
from connectors.remote.generated import exchange_service_pb2_grpc as api_grpc
from connectors.remote.generated import models_pb2 as pb
from mm.core.model import AccountUpdate, MarketRules, OrderReport, OrderRequest, Position
from mm.errors import (
    ConfigError,
    ExchangeUnavailable,
    InvalidArgument,
    MMError,
    OrderNotFound,
)
from mm.netaddr import host_port, is_loopback
from mm.observability.logs import register_secret
from mm.ports import Exchange

log = logging.getLogger(__name__)

SERVICE_NAME = api.DESCRIPTOR.services_by_name["ExchangeService"].full_name
INTERVAL = re.compile(r"^[1-9][0-9]{0,3}[smhdwM]$")
MAX_BATCH = 100  # orders or ids per Batch* call
MAX_KLINES = 1500
ID_INDEX_SIZE = 100_000  # exchange order ids remembered for lookups by exchange id
# accept the keepalive pings RemoteExchange sends (every 10 s) on quiet streams and idle channels
SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    token: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    preload_symbols: tuple[str, ...] = ()
    stream_buffer: int = 10_000
    max_stream_batch: int = 500
    health_every_s: float = 1.0
    health_timeout_s: float = 5.0
    grace_s: float = 5.0


def read_tls(cert: Path, key: Path) -> grpc.ServerCredentials:
    """Server credentials from PEM files; refuses a private key others can read."""
    try:
        mode = stat.S_IMODE(os.stat(key).st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"tls_key {key} is readable by group or others (mode {mode:o}): chmod 600 {key}"
            )
        return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    except OSError as e:
        raise ConfigError(f"cannot read TLS file {e.filename}: {e.strerror}") from e


# -- auth ----------------------------------------------------------------------------------------
class BearerAuth(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        register_secret(token)
        self._expected = f"Bearer {token}".encode()
        self.refused = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        supplied = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                supplied = value if isinstance(value, str) else value.decode(errors="replace")
        if hmac.compare_digest(supplied.encode(), self._expected):
            return handler
        self.refused += 1
        log.warning("refused %s: %s bearer token", details.method, "wrong" if supplied else "no")
        return _denied(handler)  # even for a method that does not exist: reveal nothing


def _denied(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    message = "missing or wrong bearer token (metadata 'authorization: Bearer <token>')"

    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(deny)  # raw bytes in, nothing out
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


# -- error edge ----------------------------------------------------------------------------------
async def _abort(context: grpc.aio.ServicerContext, error: BaseException, method: str) -> None:
    if isinstance(error, MMError):
        log.info("%s: %s: %s", method, type(error).__name__, error)
        details = str(error)
    else:
        log.error("%s failed", method, exc_info=error)
        details = f"internal error: {type(error).__name__}"
    await context.abort(code_for(error), details, trailing_metadata=trailers_for(error))


def unary(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Every exception becomes a status code (and trailers) by the one table."""

    @functools.wraps(method)
    async def handler(self: ExchangeServicer, request: Any, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except Exception as e:
            self.server.observe_failure(e)
            await _abort(context, e, method.__name__)

    return handler


def streaming(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def handler(self: ExchangeServicer, request: Any, context: grpc.aio.ServicerContext):
        try:
            async for response in method(self, request, context):
                yield response
        except Exception as e:
            self.server.observe_failure(e)
            await _abort(context, e, method.__name__)

    return handler


def _result(value: OrderReport | Exception) -> pb.OrderResult:
    if isinstance(value, OrderReport):
        return pb.OrderResult(order=convert.order_pb(value))
    code = code_for(value)
    return pb.OrderResult(
        error=pb.Error(code=code.value[0], type=type(value).__name__, message=str(value))
    )


# -- the service ---------------------------------------------------------------------------------
class ExchangeServicer(api_grpc.ExchangeServiceServicer):
    def __init__(self, server: ExchangeConnector) -> None:
        self.server = server
        self.exchange = server.exchange

    @unary
    async def GetName(self, request: api.GetNameRequest, context: Any) -> api.GetNameResponse:
        return api.GetNameResponse(
            name=self.exchange.name, consistency_window_ms=self.exchange.consistency_window_ms
        )

    @unary
    async def LoadMarkets(self, request: api.LoadMarketsRequest, context: Any):
        symbols = [convert.text(s, "symbols[]") for s in request.symbols]
        if not symbols:
            raise InvalidArgument("symbols: name at least one symbol")
        rules = await self.server.markets(symbols, fresh=True)
        return api.LoadMarketsResponse(symbols=[convert.rules_pb(rules[s]) for s in symbols])

    @unary
    async def GetSymbolInfo(self, request: api.GetSymbolInfoRequest, context: Any):
        symbol = convert.text(request.symbol, "symbol")
        rules = await self.server.markets([symbol], fresh=True)
        return api.GetSymbolInfoResponse(symbol_info=convert.rules_pb(rules[symbol]))

    @unary
    async def PlaceOrder(self, request: api.PlaceOrderRequest, context: Any):
        order = convert.order_request(request.order)
        await self.server.symbol(order.symbol)
        report = await self.exchange.place_order(order)
        return api.PlaceOrderResponse(order=convert.order_pb(self.server.remember(report)))

    @unary
    async def BatchPlaceOrders(self, request: api.BatchPlaceOrdersRequest, context: Any):
        _check_batch(len(request.orders), "orders")
        parsed: list[OrderRequest | Exception] = []
        for item in request.orders:
            try:
                order = convert.order_request(item)
                await self.server.symbol(order.symbol)
                parsed.append(order)
            except MMError as e:
                parsed.append(e)
        valid = [p for p in parsed if isinstance(p, OrderRequest)]
        placed = iter(await self.exchange.place_orders(valid) if valid else [])
        results = [next(placed) if isinstance(p, OrderRequest) else p for p in parsed]
        for r in results:
            if isinstance(r, OrderReport):
                self.server.remember(r)
            else:
                self.server.observe_failure(r)
        return api.BatchPlaceOrdersResponse(results=[_result(r) for r in results])

    @unary
    async def CancelOrder(self, request: api.CancelOrderRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        client_id = await self.server.client_id(symbol, request)
        report = await self.exchange.cancel_order(symbol, client_id)
        return api.CancelOrderResponse(order=convert.order_pb(self.server.remember(report)))

    @unary
    async def BatchCancelOrders(self, request: api.BatchCancelOrdersRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        _check_batch(len(request.client_order_ids), "client_order_ids")
        results: list[OrderReport | Exception] = []
        for raw in request.client_order_ids:
            try:
                client_id = convert.text(raw, "client_order_ids[]")
                results.append(
                    self.server.remember(await self.exchange.cancel_order(symbol, client_id))
                )
            except MMError as e:
                self.server.observe_failure(e)
                results.append(e)
        return api.BatchCancelOrdersResponse(results=[_result(r) for r in results])

    @unary
    async def CancelAllOrders(self, request: api.CancelAllOrdersRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        reports = await self.exchange.cancel_all(symbol)
        return api.CancelAllOrdersResponse(
            orders=[convert.order_pb(self.server.remember(r)) for r in reports]
        )

    @unary
    async def GetOrder(self, request: api.GetOrderRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        client_id = await self.server.client_id(symbol, request)
        report = await self.exchange.fetch_order(symbol, client_id)
        return api.GetOrderResponse(order=convert.order_pb(self.server.remember(report)))

    @unary
    async def GetOpenOrders(self, request: api.GetOpenOrdersRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        reports = await self.exchange.fetch_open_orders(symbol)
        return api.GetOpenOrdersResponse(
            orders=[convert.order_pb(self.server.remember(r)) for r in reports]
        )

    @unary
    async def GetFills(self, request: api.GetFillsRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        if request.since_ms < 0:
            raise InvalidArgument(f"since_ms: must not be negative, got {request.since_ms}")
        fills = await self.exchange.fetch_fills(symbol, request.since_ms)
        return api.GetFillsResponse(fills=[convert.fill_pb(f) for f in fills])

    @unary
    async def GetAccount(self, request: api.GetAccountRequest, context: Any):
        balances = await self.exchange.fetch_balances()
        return api.GetAccountResponse(
            balances=[convert.balance_pb(b) for _, b in sorted(balances.items())]
        )

    @unary
    async def GetPositions(self, request: api.GetPositionsRequest, context: Any):
        symbols = await self.server.symbols(request.symbols)
        positions = await self.exchange.fetch_positions(symbols)
        return api.GetPositionsResponse(
            positions=[convert.position_pb(positions.get(s, Position(s, 0))) for s in symbols]  # type: ignore[arg-type]
        )

    @unary
    async def GetHistoricalKlines(self, request: api.GetHistoricalKlinesRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        interval = _interval(request.interval)
        limit = request.limit or 500
        if not 1 <= limit <= MAX_KLINES:
            raise InvalidArgument(f"limit: must be 1..{MAX_KLINES}, got {request.limit}")
        since = request.since_ms if request.HasField("since_ms") else None
        candles = await self.exchange.fetch_klines(symbol, interval, since, limit)
        return api.GetHistoricalKlinesResponse(candles=[convert.candle_pb(c) for c in candles])

    # -- streams ---------------------------------------------------------------------------------
    @streaming
    async def SubscribePrice(self, request: api.SubscribePriceRequest, context: Any):
        symbols = frozenset(await self.server.symbols(request.symbols))
        async for batch in self.server.follow(self.server.prices, symbols):
            yield api.SubscribePriceResponse(events=[convert.price_event_pb(t) for t in batch])

    @streaming
    async def SubscribeOrders(self, request: api.SubscribeOrdersRequest, context: Any):
        symbols = frozenset(await self.server.symbols(request.symbols))
        async for batch in self.server.follow(self.server.orders, symbols):
            events = [ev.OrderEvent(order=convert.order_pb(r)) for r in batch]
            yield api.SubscribeOrdersResponse(events=events)

    @streaming
    async def SubscribeKlines(self, request: api.SubscribeKlinesRequest, context: Any):
        symbol = await self.server.symbol(request.symbol)
        interval = _interval(request.interval)
        fanout = self.server.klines(symbol, interval)
        async for batch in self.server.follow(fanout, frozenset()):
            events = [
                ev.KlineEvent(symbol=symbol, interval=interval, candle=convert.candle_pb(c))
                for c in batch
            ]
            yield api.SubscribeKlinesResponse(events=events)

    @streaming
    async def SubscribeAccount(self, request: api.SubscribeAccountRequest, context: Any):
        async for batch in self.server.follow(self.server.account, frozenset()):
            yield api.SubscribeAccountResponse(events=[convert.account_event_pb(u) for u in batch])

    @streaming
    async def SubscribePositions(self, request: api.SubscribePositionsRequest, context: Any):
        symbols = await self.server.symbols(request.symbols)
        async for batch in self.server.follow(self.server.account, frozenset()):
            events = [e for update in batch for e in _position_events(update, symbols)]
            if events or not batch:
                yield api.SubscribePositionsResponse(events=events)


def _position_events(update: AccountUpdate, symbols: Sequence[str]) -> list[ev.PositionEvent]:
    held = {p.symbol: p for p in update.positions}
    return [
        ev.PositionEvent(
            position=convert.position_pb(held.get(s, Position(s, 0))),  # type: ignore[arg-type]
            time_ms=update.ts_ms,
        )
        for s in symbols
    ]


def _check_batch(n: int, field: str) -> None:
    if not 1 <= n <= MAX_BATCH:
        raise InvalidArgument(f"{field}: between 1 and {MAX_BATCH} items, got {n}")


def _interval(value: str) -> str:
    if not INTERVAL.match(value):
        raise InvalidArgument(f"interval: {value[:20]!r} is not like 1m, 15m, 1h, 1d")
    return value


# -- the server ----------------------------------------------------------------------------------
class ExchangeConnector:
    """Serves `exchange` on `config.host:config.port` until `stop()`."""

    def __init__(self, exchange: Exchange, config: ServerConfig = ServerConfig()) -> None:
        self.exchange = exchange
        self.config = config
        self.port = 0
        self.serving = False
        self.health = health.aio.HealthServicer()
        self.auth = BearerAuth(config.token) if config.token else None
        self._rules: dict[str, MarketRules] = {}
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()  # (symbol, exch id) -> cid
        self._server: grpc.aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._described = False
        self._markets_loaded = not config.preload_symbols
        capacity = config.stream_buffer
        self.prices = Fanout(
            "prices", lambda s: exchange.stream_prices(sorted(s)), _symbol, capacity=capacity
        )
        self.orders = Fanout("orders", self._upstream_orders, _symbol, capacity=capacity)
        self.account = Fanout(
            "account",
            lambda _: exchange.stream_account(),
            _none,
            capacity=capacity,
            all_symbols=True,
        )
        self._klines: dict[tuple[str, str], Fanout] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> int:
        """Bind and start serving; returns the bound port. Health starts NOT_SERVING."""
        c = self.config
        interceptors = [self.auth] if self.auth else []
        server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
        api_grpc.add_ExchangeServiceServicer_to_server(ExchangeServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        if not is_loopback(c.host) and not c.token:
            raise ConfigError(f"{c.host} is reachable from other machines: set a token")
        address = host_port(c.host, c.port)
        try:
            if c.tls_cert is not None and c.tls_key is not None:
                self.port = server.add_secure_port(address, read_tls(c.tls_cert, c.tls_key))
            else:
                self.port = server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise ConfigError(f"cannot bind {address} (in use or not a local address)")
        await self._set_serving(False)
        await server.start()
        self._server = server
        self._health_task = asyncio.get_running_loop().create_task(
            self._watch_health(), name="connector-health"
        )
        return self.port

    async def wait_serving(self, timeout_s: float | None = 10.0) -> None:
        """Return once health is SERVING (`timeout_s=None`: however long it takes)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self.serving:
            if deadline is not None and loop.time() > deadline:
                raise ExchangeUnavailable("the exchange did not become healthy in time")
            await asyncio.sleep(0.01)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting calls, end every stream, let in-flight unary calls finish."""
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        self.serving = False
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
        fanouts = (self.prices, self.orders, self.account, *self._klines.values())
        for fanout in fanouts:
            fanout.closed = True  # a subscription arriving from now on is refused
        stopping = None
        if self._server is not None:  # stop accepting; unary calls in flight get `grace`
            grace = self.config.grace_s if grace_s is None else grace_s
            stopping = asyncio.create_task(self._server.stop(grace))
            self._server = None
        for fanout in fanouts:  # streams end normally, so they do not hold up the grace
            await fanout.close()
        if stopping is not None:
            await stopping

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    # -- health ----------------------------------------------------------------------------------
    async def _set_serving(self, ok: bool) -> None:
        self.serving = ok
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def _watch_health(self) -> None:
        while not self._stopping:
            ok = await self._healthy()
            if ok != self.serving:
                log.log(
                    logging.INFO if ok else logging.WARNING,
                    "exchange %s: %s",
                    self.exchange.name,
                    "SERVING" if ok else "NOT_SERVING",
                )
                await self._set_serving(ok)
            await asyncio.sleep(self.config.health_every_s)

    async def _healthy(self) -> bool:
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel from stop()
            async with asyncio.timeout(self.config.health_timeout_s):
                report = await self.exchange.check_health()
            if not report.ok:
                return False
            if not self._described:  # name and consistency window, before anyone asks
                await self.exchange.describe()
                self._described = True
            if not self._markets_loaded:
                await self.markets(list(self.config.preload_symbols))
                self._markets_loaded = True
            return True
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.info("exchange health check failed: %s", e)
            return False

    def observe_failure(self, error: BaseException) -> None:
        """An upstream call said "unavailable": report NOT_SERVING until the next good check."""
        if isinstance(error, ExchangeUnavailable) and self.serving:
            self.serving = False
            log.warning("exchange %s unavailable: NOT_SERVING (%s)", self.exchange.name, error)
            task = asyncio.get_running_loop().create_task(self._set_serving(False))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- markets and ids -------------------------------------------------------------------------
    async def markets(
        self, symbols: Sequence[str], *, fresh: bool = False
    ) -> dict[str, MarketRules]:
        """Rules of `symbols`: cached for validating requests, `fresh` asks the exchange."""
        missing = [s for s in dict.fromkeys(symbols) if fresh or s not in self._rules]
        if missing:
            try:
                self._rules.update(await self.exchange.load_markets(missing))
            except ConfigError as e:
                raise InvalidArgument(str(e)) from e
        return {s: self._rules[s] for s in symbols}

    async def symbol(self, symbol: str) -> str:
        symbol = convert.text(symbol, "symbol")
        await self.markets([symbol])
        return symbol

    async def symbols(self, symbols: Sequence[str]) -> list[str]:
        if not symbols:
            raise InvalidArgument("symbols: name at least one symbol")
        names = [convert.text(s, "symbols[]") for s in dict.fromkeys(symbols)]
        await self.markets(names)
        return names

    def remember(self, report: OrderReport) -> OrderReport:
        if report.exchange_id:
            key = (report.symbol, report.exchange_id)
            self._ids[key] = report.client_id
            self._ids.move_to_end(key)
            if len(self._ids) > ID_INDEX_SIZE:
                self._ids.popitem(last=False)
        return report

    async def client_id(
        self, symbol: str, request: api.GetOrderRequest | api.CancelOrderRequest
    ) -> str:
        which = request.WhichOneof("order_id")
        if which == "client_order_id":
            return convert.text(request.client_order_id, "client_order_id")
        if which != "exchange_order_id":
            raise InvalidArgument("order_id: set client_order_id or exchange_order_id")
        exchange_id = convert.text(request.exchange_order_id, "exchange_order_id")
        known = self._ids.get((symbol, exchange_id))
        if known is not None:
            return known
        for report in await self.exchange.fetch_open_orders(symbol):
            self.remember(report)
        known = self._ids.get((symbol, exchange_id))
        if known is None:
            raise OrderNotFound(
                f"no order with exchange id {exchange_id} on {symbol} among the open orders and "
                "the orders this connector has seen; look it up by client order id"
            )
        return known

    # -- streams ---------------------------------------------------------------------------------
    def _upstream_orders(self, symbols: frozenset[str]) -> AsyncIterator[OrderReport]:
        stream = self.exchange.stream_orders(sorted(symbols))

        async def remembering() -> AsyncIterator[OrderReport]:
            try:
                async for report in stream:
                    yield self.remember(report)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

        return remembering()

    def klines(self, symbol: str, interval: str) -> Fanout:
        key = (symbol, interval)
        if key not in self._klines:
            self._klines[key] = Fanout(
                f"klines-{symbol}-{interval}",
                lambda _: self.exchange.stream_klines(symbol, interval),
                _none,
                capacity=self.config.stream_buffer,
                all_symbols=True,
            )
        return self._klines[key]

    async def follow(self, fanout: Fanout, symbols: frozenset[str]) -> AsyncIterator[list[Any]]:
        """Batches for one client: first an empty one (subscribed), then whatever arrives."""
        sub: Subscriber = await fanout.subscribe(symbols)
        try:
            yield []
            async for batch in sub.batches(self.config.max_stream_batch):
                yield batch
        finally:
            fanout.unsubscribe(sub)


def _symbol(item: Any) -> str | None:
    return item.symbol  # type: ignore[no-any-return]


def _none(item: Any) -> None:
    return None
