"""RemoteExchange: the `Exchange` port over an exchange_connector (gRPC, `opensqt.market_maker.v1`).

Owns: one grpc.aio channel to the connector, the calls, the stream subscriptions, the health
watch and the translation of status codes back to `mm.errors` (by the table in `errors.py`).
Must not: retry state-changing calls on its own — the engine resolves an uncertain placement by
client id (`RequestTimeout`), which is the only safe way.

- Reconnects: the channel reconnects by itself with jittered exponential backoff (bounded by
  `reconnect_backoff_s`). A stream that breaks raises `StreamDisconnected`, the port's signal to
  resubscribe and gap-fill; opening the next subscription waits (up to `reconnect_wait_s`) for
  the channel to be ready again, so a restarting connector is picked up as soon as it is back.
- Subscriptions register before anything else happens: a `stream_*` call starts the RPC at
  once, and every later call on this client waits until the server confirmed the subscription
  (its first, empty, message). So an order placed after `stream_orders()` is never missed.
- Health: a background `grpc.health.v1` Watch keeps `serving` current; while the connector says
  NOT_SERVING, new orders are refused locally with `ExchangeUnavailable` (nothing sent).
- Market rules, symbols and assets all come from the connector; nothing is hard-coded here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connectors.remote import convert
from connectors.remote.errors import to_mm_error
from connectors.remote.generated import exchange_service_pb2 as api
from connectors.remote.generated import exchange_service_pb2_grpc as api_grpc
from connectors.remote.generated import models_pb2 as pb
from connectors.remote.server import SERVICE_NAME
from mm.core.model import (
    AccountUpdate,
    Balance,
    Candle,
    Fill,
    MarketRules,
    OrderReport,
    OrderRequest,
    Position,
    PriceTick,
)
from mm.engine.backoff import jittered
from mm.errors import (
    ConfigError,
    ExchangeUnavailable,
    InvalidArgument,
    MMError,
    StreamDisconnected,
)
from mm.observability.logs import register_secret
from mm.ports import HealthReport

log = logging.getLogger(__name__)
T = TypeVar("T")
ACK_WAIT_S = 5.0  # how long a call waits for an earlier subscription to be confirmed
STREAM_QUEUE = 1_000  # responses buffered per stream before the reader stops reading


@dataclass(frozen=True)
class RemoteConfig:
    address: str = "127.0.0.1:50051"
    token: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    call_timeout_s: float = 10.0
    reconnect_backoff_s: tuple[float, float] = (0.1, 5.0)
    reconnect_wait_s: float = 10.0  # a new subscription waits this long for the channel


class RemoteExchange:
    """One connector, one channel; safe to share between tasks of one event loop."""

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self.name = "remote"
        self.consistency_window_ms = 0
        self.serving: bool | None = None  # last status from the health watch (None: not known)
        self.reconnects = 0  # stream breaks reported to the caller
        self._rules: dict[str, MarketRules] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._streams: set[_Stream[Any]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        if config.token:
            register_secret(config.token)
            self._metadata = (("authorization", f"Bearer {config.token}"),)
        low, high = config.reconnect_backoff_s
        options = [
            ("grpc.initial_reconnect_backoff_ms", int(low * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(low * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(high * 1000)),
            ("grpc.keepalive_time_ms", 10_000),  # notice a dead connection while idle
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        if config.tls:
            root = _read(config.ca_file) if config.ca_file else None
            creds = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.aio.secure_channel(config.address, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(config.address, options=options)
        self._stub = api_grpc.ExchangeServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @classmethod
    async def connect(cls, config: RemoteConfig) -> RemoteExchange:
        """A client whose name and consistency window come from the connector."""
        client = cls(config)
        try:
            await client.describe()
        except BaseException:
            await client.close()
            raise
        return client

    async def describe(self) -> None:
        reply = await self._call(self._stub.GetName, api.GetNameRequest(), "GetName")
        self.name = reply.name
        self.consistency_window_ms = int(reply.consistency_window_ms)

    # -- plumbing --------------------------------------------------------------------------------
    async def _call(
        self,
        rpc: Callable[..., Awaitable[T]],
        request: Any,
        what: str,
        *,
        changes_state: bool = False,
    ) -> T:
        self._start_watch()
        if self._pending:  # subscriptions started before this call register first
            await asyncio.wait(list(self._pending), timeout=ACK_WAIT_S)
        try:
            return await rpc(request, metadata=self._metadata, timeout=self.config.call_timeout_s)
        except grpc.aio.AioRpcError as e:
            raise _mapped(e, what, changes_state) from None

    def _start_watch(self) -> None:
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(
                self._watch_health(), name="remote-health"
            )

    async def _watch_health(self) -> None:
        """Follow the connector's health; resume watching after every break (with backoff)."""
        attempt = 0
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        while True:
            try:
                async for reply in self._health.Watch(request, metadata=self._metadata):
                    attempt = 0
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    if serving != self.serving:
                        log.info(
                            "connector %s: %s",
                            self.config.address,
                            "SERVING" if serving else "NOT_SERVING",
                        )
                    self.serving = serving
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                if e.code() is grpc.StatusCode.UNAUTHENTICATED:
                    self.serving = False
                    log.error("connector %s refused the token; health unknown", self.config.address)
                    return
            self.serving = None
            attempt += 1
            await asyncio.sleep(jittered(self.config.reconnect_backoff_s, attempt))

    # -- the port: markets and orders ------------------------------------------------------------
    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        try:
            reply = await self._call(
                self._stub.LoadMarkets, api.LoadMarketsRequest(symbols=list(symbols)), "LoadMarkets"
            )
        except InvalidArgument as e:  # unknown symbols: the port promises ConfigError
            raise ConfigError(str(e)) from e
        rules = {m.symbol: convert.rules(m) for m in reply.symbols}
        self._rules.update(rules)
        return {s: rules[s] for s in symbols}

    async def place_order(self, request: OrderRequest) -> OrderReport:
        self._refuse_if_down("place_order")
        message = api.PlaceOrderRequest(order=convert.order_request_pb(request))
        reply = await self._call(self._stub.PlaceOrder, message, "PlaceOrder", changes_state=True)
        return convert.order(reply.order)

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        if not requests:
            return []
        self._refuse_if_down("place_orders")
        message = api.BatchPlaceOrdersRequest(
            orders=[convert.order_request_pb(r) for r in requests]
        )
        reply = await self._call(
            self._stub.BatchPlaceOrders, message, "BatchPlaceOrders", changes_state=True
        )
        return [_outcome(r, "BatchPlaceOrders") for r in reply.results]

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        message = api.CancelOrderRequest(symbol=symbol, client_order_id=client_id)
        reply = await self._call(self._stub.CancelOrder, message, "CancelOrder", changes_state=True)
        return convert.order(reply.order)

    async def cancel_orders(
        self, symbol: str, client_ids: Sequence[str]
    ) -> list[OrderReport | Exception]:
        message = api.BatchCancelOrdersRequest(symbol=symbol, client_order_ids=list(client_ids))
        reply = await self._call(
            self._stub.BatchCancelOrders, message, "BatchCancelOrders", changes_state=True
        )
        return [_outcome(r, "BatchCancelOrders") for r in reply.results]

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        message = api.CancelAllOrdersRequest(symbol=symbol)
        reply = await self._call(
            self._stub.CancelAllOrders, message, "CancelAllOrders", changes_state=True
        )
        return [convert.order(o) for o in reply.orders]

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        message = api.GetOrderRequest(symbol=symbol, client_order_id=client_id)
        reply = await self._call(self._stub.GetOrder, message, "GetOrder")
        return convert.order(reply.order)

    async def fetch_order_by_exchange_id(self, symbol: str, exchange_id: str) -> OrderReport:
        message = api.GetOrderRequest(symbol=symbol, exchange_order_id=exchange_id)
        reply = await self._call(self._stub.GetOrder, message, "GetOrder")
        return convert.order(reply.order)

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        reply = await self._call(
            self._stub.GetOpenOrders, api.GetOpenOrdersRequest(symbol=symbol), "GetOpenOrders"
        )
        return [convert.order(o) for o in reply.orders]

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        message = api.GetFillsRequest(symbol=symbol, since_ms=since_ms)
        reply = await self._call(self._stub.GetFills, message, "GetFills")
        return [convert.fill(f) for f in reply.fills]

    async def fetch_balances(self) -> dict[str, Balance]:
        reply = await self._call(self._stub.GetAccount, api.GetAccountRequest(), "GetAccount")
        return {b.asset: convert.balance(b) for b in reply.balances}

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        if not symbols:
            return {}
        message = api.GetPositionsRequest(symbols=list(symbols))
        reply = await self._call(self._stub.GetPositions, message, "GetPositions")
        return {p.symbol: convert.position(p) for p in reply.positions}

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        message = api.GetHistoricalKlinesRequest(
            symbol=symbol, interval=interval, since_ms=since_ms, limit=limit
        )
        reply = await self._call(self._stub.GetHistoricalKlines, message, "GetHistoricalKlines")
        return [convert.candle(c) for c in reply.candles]

    async def check_health(self) -> HealthReport:
        """A fresh health check round trip (its latency feeds the latency guard)."""
        self._start_watch()
        start = time.perf_counter()
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                metadata=self._metadata,
                timeout=self.config.call_timeout_s,
            )
        except grpc.aio.AioRpcError as e:
            error = _mapped(e, "Health.Check", False)
            return HealthReport(False, str(error), (time.perf_counter() - start) * 1000)
        ok = reply.status == health_pb2.HealthCheckResponse.SERVING
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        detail = "" if ok else f"connector reports {name}"
        return HealthReport(ok, detail, (time.perf_counter() - start) * 1000)

    def _refuse_if_down(self, what: str) -> None:
        if self.serving is False:
            raise ExchangeUnavailable(
                f"{what}: the connector reports NOT_SERVING; nothing was sent"
            )

    # -- the port: streams -----------------------------------------------------------------------
    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        request = api.SubscribePriceRequest(symbols=list(symbols))
        return self._subscribe(self._stub.SubscribePrice, request, "prices", convert.price_event)

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        request = api.SubscribeOrdersRequest(symbols=list(symbols))
        return self._subscribe(
            self._stub.SubscribeOrders, request, "orders", lambda e: convert.order(e.order)
        )

    def stream_klines(self, symbol: str, interval: str) -> AsyncIterator[Candle]:
        request = api.SubscribeKlinesRequest(symbol=symbol, interval=interval)
        return self._subscribe(
            self._stub.SubscribeKlines, request, "klines", lambda e: convert.candle(e.candle)
        )

    def stream_account(self) -> AsyncIterator[AccountUpdate]:
        request = api.SubscribeAccountRequest()
        return self._subscribe(
            self._stub.SubscribeAccount, request, "account", convert.account_event
        )

    def stream_positions(self, symbols: Sequence[str]) -> AsyncIterator[Position]:
        request = api.SubscribePositionsRequest(symbols=list(symbols))
        return self._subscribe(
            self._stub.SubscribePositions,
            request,
            "positions",
            lambda e: convert.position(e.position),
        )

    def _subscribe(
        self, rpc: Callable[..., Any], request: Any, what: str, read: Callable[[Any], T]
    ) -> AsyncIterator[T]:
        stream: _Stream[T] = _Stream(self, rpc, request, what, read)
        self._streams.add(stream)
        self._pending.add(stream.acked)
        stream.acked.add_done_callback(self._pending.discard)
        return stream.items()

    async def close(self) -> None:
        for stream in list(self._streams):
            await stream.stop()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self._channel.close(grace=None)


class _Stream(Generic[T]):
    """One subscription: a reader task pumps the RPC into a bounded queue from the start."""

    _END = object()

    def __init__(
        self,
        client: RemoteExchange,
        rpc: Callable[..., Any],
        request: Any,
        what: str,
        read: Callable[[Any], T],
    ) -> None:
        self.client = client
        self.what = what
        self.read = read
        loop = asyncio.get_running_loop()
        self.acked: asyncio.Future[None] = loop.create_future()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(STREAM_QUEUE)
        self.call = rpc(
            request,
            metadata=client._metadata,
            wait_for_ready=True,
            timeout=None,
        )
        self.task = loop.create_task(self._pump(), name=f"remote-{what}")

    async def _pump(self) -> None:
        try:
            first = True
            async with asyncio.timeout(self.client.config.reconnect_wait_s):
                response = await self.call.read()  # the first message: subscribed
            while response is not grpc.aio.EOF:
                if first:
                    first = False
                    if not self.acked.done():
                        self.acked.set_result(None)
                for event in response.events:
                    await self.queue.put(self.read(event))
                response = await self.call.read()
            error: Exception = StreamDisconnected(f"connector ended the {self.what} stream")
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = StreamDisconnected(f"{self.what}: connector not reachable in time")
        except grpc.aio.AioRpcError as e:
            mapped = _mapped(e, f"Subscribe {self.what}", False)
            if (
                isinstance(mapped, (InvalidArgument, ConfigError))
                or e.code() is grpc.StatusCode.UNAUTHENTICATED
            ):
                error = mapped  # a wrong request or token: resubscribing would not help
            else:
                error = StreamDisconnected(f"{self.what} stream broke: {mapped}")
        except MMError as e:
            error = StreamDisconnected(f"{self.what}: unreadable event from the connector: {e}")
        finally:
            if not self.acked.done():
                self.acked.set_result(None)  # callers waiting for it go ahead
        await self.queue.put((self._END, error))

    async def items(self) -> AsyncIterator[T]:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, tuple) and len(item) == 2 and item[0] is self._END:
                    error = item[1]
                    if isinstance(error, StreamDisconnected):
                        self.client.reconnects += 1
                    raise error
                yield item
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.client._streams.discard(self)
        self.call.cancel()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


def _mapped(e: grpc.aio.AioRpcError, what: str, changes_state: bool) -> MMError:
    trailers = {}
    for key, value in e.trailing_metadata() or ():
        trailers[key] = value if isinstance(value, str) else value.decode(errors="replace")
    return to_mm_error(
        e.code(), e.details() or "", trailers, call=what, changes_state=changes_state
    )


def _outcome(result: pb.OrderResult, what: str) -> OrderReport | Exception:
    if result.WhichOneof("outcome") == "order":
        return convert.order(result.order)
    error = result.error
    trailers = {"mm-error-type": error.type}
    code = next((c for c in grpc.StatusCode if c.value[0] == error.code), grpc.StatusCode.UNKNOWN)
    return to_mm_error(code, error.message, trailers, call=what, changes_state=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read ca_file {path}: {e.strerror}") from e
