"""The exchange_connector on the wire: status codes, auth, health, fan-out, slow clients.

Each test runs a real grpc.aio server on 127.0.0.1 around a SimulatedExchange and talks to it
with raw generated stubs (what a client in another language sees) or with RemoteExchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connectors.remote.generated import exchange_service_pb2 as api
from connectors.remote.generated import exchange_service_pb2_grpc as api_grpc
from connectors.remote.generated import models_pb2 as pb
from connectors.remote.server import SERVICE_NAME, ExchangeConnector
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderRequest, OrderStatus, Side
from mm.engine.clock import VirtualClock
from mm.errors import (
    AuthenticationError,
    ConfigError,
    DuplicateOrder,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidArgument,
    PostOnlyRejected,
    RateLimited,
    RequestTimeout,
)
from tests.helpers import eventually, run
from tests.remote.rig import client_of, connector

SYMBOL = "BTCUSDT"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def venue(**config: Any) -> SimulatedExchange:
    config.setdefault("balances", {"USDT": D(1_000_000), "BTC": D(10)})
    config.setdefault("start_prices", {SYMBOL: D("10000")})
    return SimulatedExchange(SimConfig(**config), VirtualClock(1_700_000_000_000))


def cid() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def order(price: str = "9900", qty: str = "0.01", **fields: Any) -> pb.OrderRequest:
    values: dict[str, Any] = dict(
        symbol=SYMBOL, client_order_id=cid(), side=pb.ORDER_SIDE_BUY, price=price, quantity=qty
    )
    values.update(fields)
    return pb.OrderRequest(**values)


# a client whose receive window stays at 64 KiB, so a stalled reader backs up the server quickly
NO_WINDOW_GROWTH = (("grpc.http2.bdp_probe", 0),)


@contextlib.asynccontextmanager
async def raw(
    server: ExchangeConnector, token: str | None = None, options: Any = ()
) -> AsyncIterator[Any]:
    """Generated stubs on a plain channel: (ExchangeService, Health, call metadata)."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    address = f"127.0.0.1:{server.port}"
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        yield (
            api_grpc.ExchangeServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            metadata,
        )


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def status_of(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    error = await failure(call)
    return error.code(), dict(error.trailing_metadata() or ())


# -- bad input -----------------------------------------------------------------------------------
BAD_REQUESTS = {
    "malformed price": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price="9,900")))),
    "NaN price": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price="NaN")))),
    "zero quantity": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(qty="0")))),
    "negative quantity": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(qty="-1")))),
    "no side": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(side=0)))),
    "no client id": (
        lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(client_order_id="")))
    ),
    "unknown symbol": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(symbol="NOPE")))),
    "empty request": (lambda s: s.PlaceOrder(api.PlaceOrderRequest())),
    "no order id": (lambda s: s.GetOrder(api.GetOrderRequest(symbol=SYMBOL))),
    "bad interval": (
        lambda s: s.GetHistoricalKlines(
            api.GetHistoricalKlinesRequest(symbol=SYMBOL, interval="1 minute")
        )
    ),
    "empty batch": (lambda s: s.BatchPlaceOrders(api.BatchPlaceOrdersRequest())),
    "load unknown market": (lambda s: s.LoadMarkets(api.LoadMarketsRequest(symbols=["NOPE"]))),
    "negative since": (lambda s: s.GetFills(api.GetFillsRequest(symbol=SYMBOL, since_ms=-1))),
    # Decimal() would take these; the wire format does not
    "underscore in qty": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(qty="1_0")))),
    "padded price": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price=" 9900")))),
    "exponent": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price="9.9e3")))),
    "huge exponent": (
        lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price="1e999999999")))
    ),
    "80k digits": (lambda s: s.PlaceOrder(api.PlaceOrderRequest(order=order(price="9" * 80_000)))),
    "stream of no symbols": (lambda s: s.SubscribeOrders(api.SubscribeOrdersRequest()).read()),
    "stream of an unknown symbol": (
        lambda s: s.SubscribePrice(api.SubscribePriceRequest(symbols=["NOPE"])).read()
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_requests_get_invalid_argument_and_the_server_keeps_serving(case):
    async def scenario() -> None:
        sim = venue()
        async with connector(sim) as server, raw(server) as (stub, _, _):
            code, trailers = await status_of(BAD_REQUESTS[case](stub))
            assert code is grpc.StatusCode.INVALID_ARGUMENT
            assert trailers["mm-error-type"] == "InvalidArgument"
            assert sim.orders(SYMBOL) == []  # nothing reached the exchange
            placed = await stub.PlaceOrder(api.PlaceOrderRequest(order=order()))
            assert placed.order.status == pb.ORDER_STATUS_OPEN

    run(scenario())


def test_exchange_errors_map_to_their_status_codes():
    async def scenario() -> None:
        sim = venue(balances={"USDT": D(1000)})
        async with connector(sim) as server, raw(server) as (stub, _, _):
            first = order()
            await stub.PlaceOrder(api.PlaceOrderRequest(order=first))
            cases = [
                (api.PlaceOrderRequest(order=first), "ALREADY_EXISTS", "DuplicateOrder"),
                (
                    api.PlaceOrderRequest(order=order(price="10100", post_only=True)),
                    "FAILED_PRECONDITION",
                    "PostOnlyRejected",
                ),
                (
                    api.PlaceOrderRequest(order=order(price="9900.005")),
                    "FAILED_PRECONDITION",
                    "InvalidOrder",
                ),
                (
                    api.PlaceOrderRequest(order=order(qty="5")),
                    "RESOURCE_EXHAUSTED",
                    "InsufficientFunds",
                ),
            ]
            for request, code, kind in cases:
                got, trailers = await status_of(stub.PlaceOrder(request))
                assert (got.name, trailers["mm-error-type"]) == (code, kind)
            got, trailers = await status_of(
                stub.GetOrder(api.GetOrderRequest(symbol=SYMBOL, client_order_id="never"))
            )
            assert (got, trailers["mm-error-type"]) == (grpc.StatusCode.NOT_FOUND, "OrderNotFound")
            sim.faults.inject("place_order", "rate_limit")
            got, trailers = await status_of(stub.PlaceOrder(api.PlaceOrderRequest(order=order())))
            assert got is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert trailers["mm-error-type"] == "RateLimited"
            assert trailers["mm-retry-after-ms"] == "10"
            sim.faults.inject("place_order", "timeout_after_accept")
            got, _ = await status_of(stub.PlaceOrder(api.PlaceOrderRequest(order=order())))
            assert got is grpc.StatusCode.DEADLINE_EXCEEDED  # placed, but the caller can't know

    run(scenario())


def test_remote_exchange_raises_the_exact_mm_errors():
    async def scenario() -> None:
        sim = venue(balances={"USDT": D(1000)})
        async with connector(sim) as server, client_of(server) as client:
            request = OrderRequest(SYMBOL, cid(), Side.BUY, D("9900"), D("0.01"))
            await client.place_order(request)
            with pytest.raises(DuplicateOrder):
                await client.place_order(request)
            with pytest.raises(PostOnlyRejected):
                await client.place_order(
                    OrderRequest(SYMBOL, cid(), Side.BUY, D("10100"), D("0.01"), post_only=True)
                )
            with pytest.raises(InsufficientFunds):
                await client.place_order(OrderRequest(SYMBOL, cid(), Side.BUY, D("9900"), D(5)))
            sim.faults.inject("fetch_balances", "rate_limit")
            with pytest.raises(RateLimited) as limited:
                await client.fetch_balances()
            assert limited.value.retry_after_s == pytest.approx(0.01)
            with pytest.raises(InvalidArgument):
                await client.fetch_open_orders("NOPE")

    run(scenario())


def test_batch_place_reports_each_item_on_its_own():
    async def scenario() -> None:
        sim = venue()
        async with connector(sim) as server, client_of(server) as client:
            good = OrderRequest(SYMBOL, cid(), Side.BUY, D("9900"), D("0.01"))
            crossing = OrderRequest(SYMBOL, cid(), Side.BUY, D("10100"), D("0.01"), post_only=True)
            unknown = OrderRequest("NOPE", cid(), Side.BUY, D("9900"), D("0.01"))
            results = await client.place_orders([good, crossing, unknown, good])
            assert results[0].status is OrderStatus.OPEN  # type: ignore[union-attr]
            assert isinstance(results[1], PostOnlyRejected)
            assert isinstance(results[2], InvalidArgument)
            assert isinstance(results[3], DuplicateOrder)
            assert [o.client_id for o in sim.orders(SYMBOL)] == [good.client_id]

    run(scenario())


def test_orders_can_be_looked_up_and_cancelled_by_exchange_id():
    async def scenario() -> None:
        sim = venue()
        async with connector(sim) as server, raw(server) as (stub, _, _):
            placed = (await stub.PlaceOrder(api.PlaceOrderRequest(order=order()))).order
            by_id = await stub.GetOrder(
                api.GetOrderRequest(symbol=SYMBOL, exchange_order_id=placed.exchange_order_id)
            )
            assert by_id.order.client_order_id == placed.client_order_id
            cancelled = await stub.CancelOrder(
                api.CancelOrderRequest(symbol=SYMBOL, exchange_order_id=placed.exchange_order_id)
            )
            assert cancelled.order.status == pb.ORDER_STATUS_CANCELED
            # an order placed behind the connector's back is found among the open orders
            foreign = await sim.place_order(
                OrderRequest(SYMBOL, cid(), Side.BUY, D("9800"), D("0.01"))
            )
            found = await stub.GetOrder(
                api.GetOrderRequest(symbol=SYMBOL, exchange_order_id=foreign.exchange_id)
            )
            assert found.order.client_order_id == foreign.client_id

    run(scenario())


# -- auth ----------------------------------------------------------------------------------------
def test_a_configured_token_is_required_on_every_call_and_never_logged(caplog):
    token = "s3cret-token-" + uuid.uuid4().hex

    async def scenario() -> None:
        caplog.set_level(logging.DEBUG)
        async with connector(venue(), token=token) as server:
            for supplied in (None, "wrong-token-123456"):
                async with raw(server, supplied) as (stub, health, metadata):
                    calls = [
                        stub.GetName(api.GetNameRequest(), metadata=metadata),
                        stub.PlaceOrder(api.PlaceOrderRequest(order=order()), metadata=metadata),
                        health.Check(health_pb2.HealthCheckRequest(), metadata=metadata),
                    ]
                    for call in calls:
                        code, _ = await status_of(call)
                        assert code is grpc.StatusCode.UNAUTHENTICATED
                    stream = stub.SubscribeOrders(
                        api.SubscribeOrdersRequest(symbols=[SYMBOL]), metadata=metadata
                    )
                    code, _ = await status_of(stream.read())
                    assert code is grpc.StatusCode.UNAUTHENTICATED
            assert server.exchange.orders(SYMBOL) == []  # type: ignore[attr-defined]
            async with raw(server, token) as (stub, health, metadata):
                name = await stub.GetName(api.GetNameRequest(), metadata=metadata)
                assert name.name == "simulated"
            with pytest.raises(AuthenticationError):  # RemoteExchange says so on connect
                async with client_of(server, token="another-wrong-one"):
                    pass
            async with client_of(server) as client:  # the rig passes the right token
                assert (await client.fetch_balances())["USDT"].free == D(1_000_000)

    run(scenario())
    assert token not in caplog.text
    assert "refused" in caplog.text  # the refusals are logged, without the token


# -- health --------------------------------------------------------------------------------------
class FlakyHealth:
    """Wraps a venue whose health check fails until `up` is set (an exchange still starting)."""

    def __init__(self, inner: SimulatedExchange) -> None:
        self.inner = inner
        self.up = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def check_health(self) -> Any:
        if not self.up:
            raise ExchangeUnavailable("still starting")
        return await self.inner.check_health()


def test_health_is_not_serving_until_the_exchange_is_up_and_flips_when_it_fails():
    async def scenario() -> None:
        flaky = FlakyHealth(venue())
        server = ExchangeConnector(flaky, _config(preload_symbols=(SYMBOL,)))  # type: ignore[arg-type]
        await server.start()
        try:
            async with raw(server) as (_, health, _):
                check = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                assert (await health.Check(check)).status == NOT_SERVING
                watch = health.Watch(check)
                assert (await watch.read()).status == NOT_SERVING
                flaky.up = True
                assert (await watch.read()).status == SERVING
                # an exchange call that says "unavailable" flips health at once
                flaky.inner.faults.inject("fetch_balances", "unavailable")
                async with client_of(server) as client:
                    with pytest.raises(ExchangeUnavailable):
                        await client.fetch_balances()
                    assert (await watch.read()).status == NOT_SERVING
                    assert (await watch.read()).status == SERVING  # the next check is good
                    await flaky.inner.close()  # the exchange goes away for good
                    assert (await watch.read()).status == NOT_SERVING
                    await eventually(lambda: client.serving is False, what="client sees it")
                    with pytest.raises(ExchangeUnavailable, match="NOT_SERVING"):
                        await client.place_order(
                            OrderRequest(SYMBOL, cid(), Side.BUY, D("9900"), D("0.01"))
                        )
                    assert not (await client.check_health()).ok
                watch.cancel()
        finally:
            await server.stop(grace_s=0)

    run(scenario())


def _config(**fields: Any) -> Any:
    from connectors.remote.server import ServerConfig

    fields.setdefault("health_every_s", 0.05)
    return ServerConfig(port=0, **fields)


# -- streams -------------------------------------------------------------------------------------
def test_two_clients_get_every_order_update_and_a_stalled_one_does_not_delay_the_other():
    async def scenario() -> None:
        sim = venue()
        async with (
            connector(sim, stream_buffer=300) as server,
            client_of(server) as fast,
            client_of(server) as second,
            raw(server, options=NO_WINDOW_GROWTH) as (stub, _, _),
        ):
            streams = [fast.stream_orders([SYMBOL]), second.stream_orders([SYMBOL])]
            stalled = stub.SubscribeOrders(api.SubscribeOrdersRequest(symbols=[SYMBOL]))
            assert len((await stalled.read()).events) == 0  # subscribed; then never read again
            ids = [cid() for _ in range(1000)]  # 2000 updates: more than its socket window holds
            seen: list[dict[str, list[OrderStatus]]] = [{}, {}]

            async def consume(i: int) -> None:
                count = 0
                async for report in streams[i]:
                    seen[i].setdefault(report.client_id, []).append(report.status)
                    count += 1
                    if count == 2 * len(ids):
                        return

            readers = [asyncio.create_task(consume(i)) for i in range(2)]
            for start in range(0, len(ids), 100):
                batch = [
                    OrderRequest(SYMBOL, c, Side.BUY, D(9000), D("0.01"))
                    for c in ids[start : start + 100]
                ]
                assert all(r.status is OrderStatus.OPEN for r in await fast.place_orders(batch))  # type: ignore[union-attr]
            for start in range(0, len(ids), 100):  # bursts of 100 fit the 300-message buffer
                cancelled = await fast.cancel_orders(SYMBOL, ids[start : start + 100])
                assert all(r.status is OrderStatus.CANCELED for r in cancelled)  # type: ignore[union-attr]
            await asyncio.wait_for(asyncio.gather(*readers), 20)
            for got in seen:
                assert got == {c: [OrderStatus.OPEN, OrderStatus.CANCELED] for c in ids}
            assert server.orders.cut_off == 1  # the stalled client was cut off ...
            error = await failure(_drain(stalled))
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # ... and told why
            assert "buffer of 300 messages overflowed" in error.details()
            assert server.orders.subscribers == 2  # the others are still there

    run(scenario())


async def _drain(call: Any) -> None:
    while True:
        response = await call.read()
        if response is grpc.aio.EOF:
            return


def test_price_stream_covers_symbols_added_later_without_a_gap_for_earlier_clients():
    async def scenario() -> None:
        sim = venue()
        async with connector(sim) as server, client_of(server) as a, client_of(server) as b:
            btc = a.stream_prices([SYMBOL])
            await a.fetch_balances()  # returns once the subscription is registered
            eth = b.stream_prices(["ETHUSDT", SYMBOL])
            await b.fetch_balances()
            assert server.prices.upstream_opens == 2  # widened for ETH (make before break)
            sim.set_price(SYMBOL, D("10001"))
            sim.set_price("ETHUSDT", D("3001"))
            sim.set_price(SYMBOL, D("10002"))
            assert await ticks(btc, 2) == [(SYMBOL, D("10001")), (SYMBOL, D("10002"))]
            assert await ticks(eth, 3) == [
                (SYMBOL, D("10001")),
                ("ETHUSDT", D("3001")),
                (SYMBOL, D("10002")),
            ]
            # the first client moves to the wider subscription: no repeat, no gap
            await eventually(lambda: server.prices.handovers == 1, what="the handover")
            sim.set_price(SYMBOL, D("10003"))
            assert await ticks(btc, 1) == [(SYMBOL, D("10003"))]
            assert await ticks(eth, 1) == [(SYMBOL, D("10003"))]

    run(scenario())


async def ticks(stream: AsyncIterator[Any], n: int) -> list[tuple[str, D]]:
    return [
        (t.symbol, t.price) for t in [await asyncio.wait_for(anext(stream), 5) for _ in range(n)]
    ]


def test_positions_and_account_streams_follow_a_perpetual_fill():
    async def scenario() -> None:
        sim = venue()
        perp = "BTCUSDT-PERP"
        async with connector(sim) as server, client_of(server) as client:
            positions = client.stream_positions([perp])
            account = client.stream_account()
            await client.place_order(OrderRequest(perp, cid(), Side.BUY, D("9900"), D("0.01")))
            sim.set_price(perp, D("9900"))  # fills the buy
            position = await asyncio.wait_for(anext(positions), 5)
            while position.qty == 0:
                position = await asyncio.wait_for(anext(positions), 5)
            assert (position.symbol, position.qty) == (perp, D("0.01"))
            update = await asyncio.wait_for(anext(account), 5)
            assert any(b.asset == "USDT" for b in update.balances)
            assert (await client.fetch_positions([perp]))[perp].qty == D("0.01")

    run(scenario())


def test_shutdown_ends_streams_and_reports_not_serving():
    async def scenario() -> None:
        sim = venue()
        async with connector(sim) as server, client_of(server) as client:
            stream = client.stream_orders([SYMBOL])
            await client.fetch_balances()
            await server.stop(grace_s=1)
            with pytest.raises(Exception) as ended:
                await asyncio.wait_for(anext(stream), 5)
            assert type(ended.value).__name__ == "StreamDisconnected"
            assert not (await client.check_health()).ok

    run(scenario())


# -- a reply that cannot be trusted ---------------------------------------------------------------
class StatusOutOfBand:
    """A venue answering a placement with a status that has no wire form (after placing it)."""

    def __init__(self, inner: SimulatedExchange) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_order(self, request: OrderRequest) -> Any:
        report = await self.inner.place_order(request)
        return dataclasses.replace(report, status=OrderStatus.UNKNOWN)


def test_a_placement_whose_reply_cannot_be_sent_is_a_maybe_placed_timeout():
    async def scenario() -> None:
        sim = venue()
        async with connector(StatusOutOfBand(sim)) as server, client_of(server) as client:  # type: ignore[arg-type]
            request = OrderRequest(SYMBOL, cid(), Side.BUY, D("9900"), D("0.01"))
            with pytest.raises(RequestTimeout, match="may have been processed"):
                await client.place_order(request)
            # it was placed: the engine finds it by client id
            found = await client.fetch_order(SYMBOL, request.client_id)
            assert found.status is OrderStatus.OPEN

    run(scenario())


class Described:
    """A venue whose facts are only known after `describe()` (like one behind another hop)."""

    def __init__(self, inner: SimulatedExchange) -> None:
        self.inner = inner
        self.name = "unknown"
        self.consistency_window_ms = 0
        self.loads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def describe(self) -> None:
        self.name, self.consistency_window_ms = "lagging-venue", 750

    async def load_markets(self, symbols: Any) -> Any:
        self.loads += 1
        return await self.inner.load_markets(symbols)


def test_the_connector_describes_its_exchange_and_reloads_rules_on_request():
    async def scenario() -> None:
        wrapped = Described(venue())
        async with connector(wrapped) as server, client_of(server) as client:  # type: ignore[arg-type]
            assert (client.name, client.consistency_window_ms) == ("lagging-venue", 750)
            await client.load_markets([SYMBOL])
            await client.load_markets([SYMBOL])
            assert wrapped.loads == 2  # LoadMarkets asks the exchange (rules can change)
            await client.fetch_open_orders(SYMBOL)
            assert wrapped.loads == 2  # validating a request uses the cache

    run(scenario())


def test_a_public_bind_without_a_token_is_refused_by_the_server_itself():
    async def scenario() -> None:
        server = ExchangeConnector(venue(), _config(host="0.0.0.0"))
        with pytest.raises(ConfigError, match="set a token"):
            await server.start()

    run(scenario())
