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
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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
    AuthenticationError,
    ConfigError,
    ExchangeUnavailable,
    InvalidArgument,
    MMError,
    RequestTimeout,
    StreamDisconnected,
)
from mm.netaddr import is_loopback
from mm.observability.logs import register_secret
from mm.ports import HealthReport

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
STREAM_QUEUE = 1_000  # events buffered per stream before the reader stops reading
MAX_BATCH = 100  # the connector's limit per Batch* call


@dataclass(frozen=True)
class RemoteConfig:
    address: str = "127.0.0.1:50051"
    token: str | None = field(default=None, repr=False)
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
        self._auth_refused = False
        self._metadata: tuple[tuple[str, str], ...] = ()
        if config.token:
            register_secret(config.token)
            self._metadata = (("authorization", f"Bearer {config.token}"),)
            if not config.tls and not _is_loopback_address(config.address):
                log.warning("sending the connector token to %s without TLS", config.address)
        low, high = config.reconnect_backoff_s
        options = [
            ("grpc.initial_reconnect_backoff_ms", int(low * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(low * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(high * 1000)),
            ("grpc.keepalive_time_ms", 10_000),  # notice a dead connection while idle
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),  # keep pinging on a quiet stream
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
        reply = await self._call(self._stub.GetName, api.GetNameRequest(), "GetName", _same)
        self.name = reply.name
        self.consistency_window_ms = int(reply.consistency_window_ms)

    # -- plumbing --------------------------------------------------------------------------------
    async def _call(
        self,
        rpc: Callable[..., Awaitable[Any]],
        request: Any,
        what: str,
        read: Callable[[Any], R],
        *,
        changes_state: bool = False,
    ) -> R:
        """One unary call: its reply read by `read`, every failure an `mm.errors` error.

        A state-changing call whose outcome cannot be known (broken connection, a reply that
        cannot be read) raises `RequestTimeout`: the order may exist, look it up by client id.
        """
        self._start_watch()
        if self._pending:  # subscriptions started before this call are registered first
            await asyncio.wait(list(self._pending), timeout=self.config.reconnect_wait_s)
            if self._pending and changes_state:
                raise ExchangeUnavailable(f"{what}: a subscription is not confirmed; nothing sent")
        try:
            reply = await rpc(request, metadata=self._metadata, timeout=self.config.call_timeout_s)
        except grpc.aio.AioRpcError as e:
            raise _mapped(e, what, changes_state) from None
        try:
            return read(reply)
        except (MMError, ValueError, KeyError) as e:
            if changes_state:
                raise RequestTimeout(
                    f"{what}: the connector's reply cannot be read ({e}); the request may have "
                    "been processed: look it up by client id"
                ) from e
            raise ExchangeUnavailable(f"{what}: the connector's reply cannot be read ({e})") from e

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
                    self._auth_refused = True
                    log.error("connector %s refused the token; health unknown", self.config.address)
                    return
            self.serving = None
            attempt += 1
            await asyncio.sleep(jittered(self.config.reconnect_backoff_s, attempt))

    # -- the port: markets and orders ------------------------------------------------------------
    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        message = api.LoadMarketsRequest(symbols=list(symbols))
        try:
            rules = await self._call(self._stub.LoadMarkets, message, "LoadMarkets", _rules)
        except InvalidArgument as e:  # unknown symbols: the port promises ConfigError
            raise ConfigError(str(e)) from e
        self._rules.update(rules)
        return {s: rules[s] for s in symbols}

    async def place_order(self, request: OrderRequest) -> OrderReport:
        self._refuse_if_down("place_order")
        message = api.PlaceOrderRequest(order=convert.order_request_pb(request))
        return await self._call(
            self._stub.PlaceOrder, message, "PlaceOrder", _order, changes_state=True
        )

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        self._refuse_if_down("place_orders")
        out: list[OrderReport | Exception] = []
        for start in range(0, len(requests), MAX_BATCH):
            chunk = requests[start : start + MAX_BATCH]
            message = api.BatchPlaceOrdersRequest(
                orders=[convert.order_request_pb(r) for r in chunk]
            )
            out += await self._call(
                self._stub.BatchPlaceOrders,
                message,
                "BatchPlaceOrders",
                functools.partial(_outcomes, what="BatchPlaceOrders"),
                changes_state=True,
            )
        return out

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        message = api.CancelOrderRequest(symbol=symbol, client_order_id=client_id)
        return await self._call(
            self._stub.CancelOrder, message, "CancelOrder", _order, changes_state=True
        )

    async def cancel_orders(
        self, symbol: str, client_ids: Sequence[str]
    ) -> list[OrderReport | Exception]:
        """Cancel several orders by client id (not in the port; one result per id)."""
        out: list[OrderReport | Exception] = []
        for start in range(0, len(client_ids), MAX_BATCH):
            message = api.BatchCancelOrdersRequest(
                symbol=symbol, client_order_ids=list(client_ids[start : start + MAX_BATCH])
            )
            out += await self._call(
                self._stub.BatchCancelOrders,
                message,
                "BatchCancelOrders",
                functools.partial(_outcomes, what="BatchCancelOrders"),
                changes_state=True,
            )
        return out

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        message = api.CancelAllOrdersRequest(symbol=symbol)
        return await self._call(
            self._stub.CancelAllOrders, message, "CancelAllOrders", _orders, changes_state=True
        )

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        message = api.GetOrderRequest(symbol=symbol, client_order_id=client_id)
        return await self._call(self._stub.GetOrder, message, "GetOrder", _order)

    async def fetch_order_by_exchange_id(self, symbol: str, exchange_id: str) -> OrderReport:
        """Look an order up by the venue's id (not in the port)."""
        message = api.GetOrderRequest(symbol=symbol, exchange_order_id=exchange_id)
        return await self._call(self._stub.GetOrder, message, "GetOrder", _order)

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        message = api.GetOpenOrdersRequest(symbol=symbol)
        return await self._call(self._stub.GetOpenOrders, message, "GetOpenOrders", _orders)

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        message = api.GetFillsRequest(symbol=symbol, since_ms=since_ms)
        return await self._call(
            self._stub.GetFills, message, "GetFills", lambda r: [convert.fill(f) for f in r.fills]
        )

    async def fetch_balances(self) -> dict[str, Balance]:
        return await self._call(
            self._stub.GetAccount,
            api.GetAccountRequest(),
            "GetAccount",
            lambda r: {b.asset: convert.balance(b) for b in r.balances},
        )

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        if not symbols:
            return {}
        message = api.GetPositionsRequest(symbols=list(symbols))
        return await self._call(
            self._stub.GetPositions,
            message,
            "GetPositions",
            lambda r: {p.symbol: convert.position(p) for p in r.positions},
        )

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        message = api.GetHistoricalKlinesRequest(
            symbol=symbol, interval=interval, since_ms=since_ms, limit=limit
        )
        return await self._call(
            self._stub.GetHistoricalKlines,
            message,
            "GetHistoricalKlines",
            lambda r: [convert.candle(c) for c in r.candles],
        )

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
        if self._auth_refused:
            raise AuthenticationError(f"{what}: the connector refused our token; nothing sent")
        if self.serving is False:
            raise ExchangeUnavailable(f"{what}: the connector reports NOT_SERVING; nothing sent")

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


@dataclass(frozen=True)
class _End:
    """The last item of a stream's queue: why it ended (None: closed by us)."""

    error: Exception | None


class _Stream(Generic[T]):
    """One subscription: a reader task pumps the RPC into a bounded queue from the start."""

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
        self.call = rpc(request, metadata=client._metadata, wait_for_ready=True, timeout=None)
        self.task = loop.create_task(self._pump(), name=f"remote-{what}")

    async def _pump(self) -> None:
        try:
            error = await self._read_all()
        finally:
            if not self.acked.done():
                self.acked.set_result(None)  # callers waiting for it go ahead
        await self.queue.put(_End(error))

    async def _read_all(self) -> Exception:
        """Read until the stream ends; returns the error its consumer must see."""
        try:
            async with asyncio.timeout(self.client.config.reconnect_wait_s):
                response = await self.call.read()  # the first message: subscribed
            if not self.acked.done():
                self.acked.set_result(None)
            while response is not grpc.aio.EOF:
                for event in response.events:
                    await self.queue.put(self.read(event))
                response = await self.call.read()
            return StreamDisconnected(f"connector ended the {self.what} stream")
        except TimeoutError:
            return StreamDisconnected(f"{self.what}: connector not reachable in time")
        except grpc.aio.AioRpcError as e:
            mapped = _mapped(e, f"Subscribe {self.what}", False)
            if isinstance(mapped, (InvalidArgument, ConfigError, AuthenticationError)):
                return mapped  # a wrong request or token: resubscribing would not help
            return StreamDisconnected(f"{self.what} stream broke: {mapped}")
        except MMError as e:
            return StreamDisconnected(f"{self.what}: unreadable event from the connector: {e}")
        except Exception as e:  # never leave the consumer waiting on a dead reader
            log.exception("%s stream reader failed", self.what)
            return StreamDisconnected(f"{self.what}: stream reader failed: {e}")

    async def items(self) -> AsyncIterator[T]:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _End):
                    if item.error is None:
                        return
                    if isinstance(item.error, StreamDisconnected):
                        self.client.reconnects += 1
                    raise item.error
                yield item
        finally:
            await self.stop()

    async def stop(self) -> None:
        """End the subscription; a reader still iterating sees the stream end."""
        self.client._streams.discard(self)
        self.call.cancel()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        while not self.queue.empty():  # make room for the end, then wake a waiting reader
            self.queue.get_nowait()
        self.queue.put_nowait(_End(None))


def _mapped(e: grpc.aio.AioRpcError, what: str, changes_state: bool) -> MMError:
    trailers = {}
    for key, value in e.trailing_metadata() or ():
        trailers[key] = value if isinstance(value, str) else value.decode(errors="replace")
    return to_mm_error(
        e.code(), e.details() or "", trailers, call=what, changes_state=changes_state
    )


def _same(reply: Any) -> Any:
    return reply


def _order(reply: Any) -> OrderReport:
    return convert.order(reply.order)


def _orders(reply: Any) -> list[OrderReport]:
    return [convert.order(o) for o in reply.orders]


def _rules(reply: api.LoadMarketsResponse) -> dict[str, MarketRules]:
    return {m.symbol: convert.rules(m) for m in reply.symbols}


def _outcomes(reply: Any, what: str) -> list[OrderReport | Exception]:
    """One result per item; an item that cannot be read may still exist: RequestTimeout."""
    out: list[OrderReport | Exception] = []
    for result in reply.results:
        try:
            out.append(_outcome(result, what))
        except MMError as e:
            out.append(RequestTimeout(f"{what}: an unreadable result ({e}); look it up"))
    return out


def _outcome(result: pb.OrderResult, what: str) -> OrderReport | Exception:
    if result.WhichOneof("outcome") == "order":
        return convert.order(result.order)
    error = result.error
    trailers = {"mm-error-type": error.type}
    code = next((c for c in grpc.StatusCode if c.value[0] == error.code), grpc.StatusCode.UNKNOWN)
    return to_mm_error(code, error.message, trailers, call=what, changes_state=True)


def _is_loopback_address(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return is_loopback(host)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read ca_file {path}: {e.strerror}") from e
