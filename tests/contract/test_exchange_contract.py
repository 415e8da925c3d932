"""The `Exchange` port's promises (mm/ports.py), run against every implementation.

Each implementation is one param of the `exchange_factory` fixture: an async context manager
yielding a `Venue` — the exchange plus what a test needs to drive it generically (a market to
trade, a valid size, a way to move the price so resting orders fill, and a way to let the
venue's consistency window pass). To add an adapter (remote, ccxt testnet), write one more
`open_*` function and list it in `VENUES`; the tests do not change.

The tests assume only what the port documents: orders may stay invisible to lookups for
`consistency_window_ms`, so lookups are polled (never slept for); a second cancel may return the
final report or raise `OrderNotFound`; streams may repeat an update.
"""

import asyncio
import contextlib
import dataclasses
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import Fill, OrderReport, OrderRequest, OrderStatus, Side
from mm.engine.clock import VirtualClock
from mm.errors import (
    ConfigError,
    DuplicateOrder,
    MMError,
    OrderNotFound,
    OrderRejected,
    PostOnlyRejected,
    StreamDisconnected,
)
from mm.ports import Exchange
from tests.ccxt.rig import ccxt_binance
from tests.helpers import POLL_S
from tests.remote.rig import serve

OPEN, FILLED, CANCELED = OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELED
TIMEOUT_S = 10.0


@dataclass
class Venue:
    exchange: Exchange
    symbol: str  # a market the account can buy and sell on
    other_symbol: str  # a second market, to check that symbol-scoped calls stay scoped
    price: D  # the market price when the venue is handed out
    step: D  # a price distance several ticks wide; orders rest `n * step` away from `price`
    qty: D  # a valid order size anywhere within a few steps of `price`
    move_price: Callable[[str, D], Awaitable[None]]  # make the market trade at this price
    settle: Callable[[], Awaitable[None]]  # let time pass (the consistency window, fill times)

    def below(self, n: int) -> D:
        return self.price - n * self.step

    def above(self, n: int) -> D:
        return self.price + n * self.step

    def buy(self, cid: str, n: int = 1, **flags) -> OrderRequest:
        return OrderRequest(self.symbol, cid, Side.BUY, self.below(n), self.qty, **flags)

    def sell(self, cid: str, n: int = 1, **flags) -> OrderRequest:
        return OrderRequest(self.symbol, cid, Side.SELL, self.above(n), self.qty, **flags)


# -- implementations -----------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def open_simulated(consistency_window_ms: int = 0) -> AsyncIterator[Venue]:
    clock = VirtualClock(1_700_000_000_000)
    config = SimConfig(
        balances={"USDT": D(1_000_000), "BTC": D(10)},
        start_prices={"BTCUSDT": D("10000"), "ETHUSDT": D("10000")},
        consistency_window_ms=consistency_window_ms,
    )
    exchange = SimulatedExchange(config, clock)

    async def move_price(symbol: str, price: D) -> None:
        clock.advance(1)
        exchange.set_price(symbol, price)

    async def settle() -> None:
        clock.advance(exchange.consistency_window_ms + 1)

    try:
        yield Venue(
            exchange, "BTCUSDT", "BTCUSDT-PERP", D("10000"), D("100"), D("0.01"), move_price, settle
        )
    finally:
        await exchange.close()


@contextlib.asynccontextmanager
async def open_remote() -> AsyncIterator[Venue]:
    """RemoteExchange -> real gRPC on loopback -> exchange_connector -> SimulatedExchange."""
    async with open_simulated() as inner, serve(inner.exchange) as client:
        yield dataclasses.replace(inner, exchange=client)


@contextlib.asynccontextmanager
async def open_ccxt_binance() -> AsyncIterator[Venue]:
    """CcxtExchange(binance spot) -> the real ccxt client -> HTTP/WebSocket on loopback ->
    the Binance-dialect emulator -> SimulatedExchange."""
    async with open_simulated() as inner, ccxt_binance(inner.exchange) as client:
        yield dataclasses.replace(inner, exchange=client, other_symbol="ETHUSDT")


@contextlib.asynccontextmanager
async def open_ccxt_binance_linear() -> AsyncIterator[Venue]:
    """The same, on Binance's USD-M futures dialect (the simulated perpetuals)."""
    async with open_simulated() as inner, ccxt_binance(inner.exchange, "linear") as client:
        yield dataclasses.replace(
            inner, exchange=client, symbol="BTCUSDT-PERP", other_symbol="ETHUSDT-PERP"
        )


VENUES = {
    "ccxt-binance-linear": open_ccxt_binance_linear,
    "ccxt-binance-spot": open_ccxt_binance,
    "remote": open_remote,
    "simulated": open_simulated,
    # The same venue with eventually consistent lookups: keeps the suite honest about polling.
    "simulated-lagging": lambda: open_simulated(consistency_window_ms=500),
}


@pytest.fixture(params=sorted(VENUES))
def exchange_factory(request):
    return VENUES[request.param]


def run_with(exchange_factory, scenario: Callable[[Venue], Awaitable[None]]) -> None:
    async def main() -> None:
        async with exchange_factory() as venue:
            await scenario(venue)

    asyncio.run(main())


_ids = itertools.count()


def new_id(prefix: str = "ct") -> str:
    """Unique across runs too (a real venue remembers client ids)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}{next(_ids)}"


# -- polling helpers -----------------------------------------------------------------------------
async def until(venue: Venue, probe, condition, what: str):
    """Call `probe()` until `condition(value)` holds; let venue time pass in between."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = await probe()
        if condition(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last saw {value!r}")
        await venue.settle()
        await asyncio.sleep(POLL_S)


async def fetch(venue: Venue, cid: str, symbol: str | None = None) -> OrderReport:
    """The order's report once the venue shows it (polls through the consistency window)."""
    symbol = symbol or venue.symbol

    async def probe():
        try:
            return await venue.exchange.fetch_order(symbol, cid)
        except OrderNotFound:
            return None

    return await until(venue, probe, lambda r: r is not None, f"order {cid} to be visible")


async def open_ids(venue: Venue, expected: set[str], symbol: str | None = None) -> set[str]:
    """Client ids open on the symbol, once every id in `expected` is visible."""
    symbol = symbol or venue.symbol

    async def probe():
        return {r.client_id for r in await venue.exchange.fetch_open_orders(symbol)}

    return await until(venue, probe, lambda ids: expected <= ids, f"{expected} to be listed")


async def filled(venue: Venue, cid: str) -> OrderReport:
    return await until(
        venue,
        lambda: fetch(venue, cid),
        lambda r: r.status is FILLED,
        f"order {cid} to fill",
    )


async def next_update(stream) -> OrderReport:
    return await asyncio.wait_for(anext(stream), TIMEOUT_S)


def collapse(statuses: list[OrderStatus]) -> list[OrderStatus]:
    """Statuses with repeats removed (a stream may deliver the same update twice)."""
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] is not s]


# -- the promises --------------------------------------------------------------------------------
def test_place_order_returns_a_report_with_the_client_id(exchange_factory):
    async def scenario(venue: Venue) -> None:
        cid = new_id()
        report = await venue.exchange.place_order(venue.buy(cid))
        assert (report.client_id, report.symbol, report.side) == (cid, venue.symbol, Side.BUY)
        assert (report.price, report.qty, report.status) == (venue.below(1), venue.qty, OPEN)
        assert report.exchange_id

    run_with(exchange_factory, scenario)


def test_the_same_client_id_again_raises_duplicate_and_creates_nothing(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, cid = venue.exchange, new_id()
        await ex.place_order(venue.buy(cid, 1))
        with pytest.raises(DuplicateOrder):
            await ex.place_order(venue.buy(cid, 2))
        await open_ids(venue, {cid})
        listed = [r for r in await ex.fetch_open_orders(venue.symbol) if r.client_id == cid]
        assert [r.price for r in listed] == [venue.below(1)]
        assert (await fetch(venue, cid)).price == venue.below(1)

        await ex.cancel_order(venue.symbol, cid)  # a finished order keeps its id
        with pytest.raises(DuplicateOrder):
            await ex.place_order(venue.buy(cid, 2))
        assert cid not in await open_ids(venue, set())

    run_with(exchange_factory, scenario)


def test_fetch_order_finds_open_and_finished_orders_by_client_id(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, cid = venue.exchange, new_id()
        placed = await ex.place_order(venue.buy(cid))
        report = await fetch(venue, cid)
        assert (report.client_id, report.status, report.exchange_id) == (
            cid,
            OPEN,
            placed.exchange_id,
        )
        await venue.move_price(venue.symbol, venue.below(1))
        done = await filled(venue, cid)
        assert (done.filled_qty, done.avg_price) == (venue.qty, venue.below(1))
        with pytest.raises(OrderNotFound):
            await ex.fetch_order(venue.symbol, new_id("never"))

    run_with(exchange_factory, scenario)


def test_fetch_open_orders_lists_foreign_orders_too(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex = venue.exchange
        ours, manual, other_bot = new_id(), new_id("manual-"), new_id("x:")
        await ex.place_order(venue.buy(ours, 1))
        await ex.place_order(venue.buy(manual, 2))
        await ex.place_order(venue.sell(other_bot, 1))
        assert {ours, manual, other_bot} <= await open_ids(venue, {ours, manual, other_bot})
        await ex.cancel_order(venue.symbol, manual)
        listed = await until(
            venue,
            lambda: open_ids(venue, {ours, other_bot}),
            lambda ids: manual not in ids,
            "the canceled order to leave the open list",
        )
        assert {ours, other_bot} <= listed
        reports = await ex.fetch_open_orders(venue.symbol)
        assert all(r.status in (OPEN, OrderStatus.PARTIALLY_FILLED) for r in reports)

    run_with(exchange_factory, scenario)


def test_cancel_order_returns_canceled_and_a_second_cancel_is_harmless(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, cid, keep = venue.exchange, new_id(), new_id()
        await ex.place_order(venue.buy(cid))
        await ex.place_order(venue.buy(keep, 2))
        report = await ex.cancel_order(venue.symbol, cid)
        assert (report.client_id, report.status, report.filled_qty) == (cid, CANCELED, 0)
        try:
            again = await ex.cancel_order(venue.symbol, cid)
        except OrderNotFound:
            pass
        else:
            assert (again.client_id, again.status) == (cid, CANCELED)
        assert (await fetch(venue, cid)).status is CANCELED
        assert (await fetch(venue, keep)).status is OPEN

    run_with(exchange_factory, scenario)


def test_cancel_of_a_filled_order_reports_the_fill(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, cid = venue.exchange, new_id()
        await ex.place_order(venue.buy(cid))
        await venue.move_price(venue.symbol, venue.below(1))
        await filled(venue, cid)
        try:
            report = await ex.cancel_order(venue.symbol, cid)
        except OrderNotFound:
            return
        assert (report.status, report.filled_qty) == (FILLED, venue.qty)

    run_with(exchange_factory, scenario)


def test_cancel_all_cancels_everything_on_the_symbol_and_nothing_else(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex = venue.exchange
        here = {new_id(), new_id("manual-"), new_id()}
        for n, cid in enumerate(sorted(here), start=1):
            await ex.place_order(venue.buy(cid, n))
        elsewhere = new_id()
        await ex.place_order(
            OrderRequest(venue.other_symbol, elsewhere, Side.BUY, venue.below(1), venue.qty)
        )
        await open_ids(venue, here)
        reports = await ex.cancel_all(venue.symbol)
        assert here <= {r.client_id for r in reports}
        assert all(r.status is CANCELED for r in reports)
        assert await open_ids(venue, set()) == set()
        for cid in here:
            assert (await fetch(venue, cid)).status is CANCELED
        assert elsewhere in await open_ids(venue, {elsewhere}, venue.other_symbol)

    run_with(exchange_factory, scenario)


def test_place_orders_returns_a_report_or_an_error_per_slot(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex = venue.exchange
        rules = (await ex.load_markets([venue.symbol]))[venue.symbol]
        first, bad, dup, last = new_id(), new_id(), new_id(), new_id()
        await ex.place_order(venue.buy(dup, 3))
        too_small = OrderRequest(venue.symbol, bad, Side.BUY, venue.below(1), rules.lot_size / 2)
        out = await ex.place_orders(
            [venue.buy(first, 1), too_small, venue.buy(dup, 2), venue.buy(last, 2)]
        )
        assert len(out) == 4
        assert isinstance(out[0], OrderReport) and out[0].client_id == first
        assert isinstance(out[1], OrderRejected)
        assert isinstance(out[2], DuplicateOrder)
        assert isinstance(out[3], OrderReport) and out[3].client_id == last
        listed = await open_ids(venue, {first, last, dup})
        assert bad not in listed

    run_with(exchange_factory, scenario)


def test_fetch_fills_returns_the_accounts_trades_since_oldest_first(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, a, b = venue.exchange, new_id(), new_id()
        await ex.place_order(venue.buy(a, 1))
        await ex.place_order(venue.buy(b, 2))
        await venue.move_price(venue.symbol, venue.below(1))
        await filled(venue, a)
        await venue.settle()
        await venue.move_price(venue.symbol, venue.below(2))
        await filled(venue, b)

        def ours(fills: list[Fill]) -> list[Fill]:
            return [f for f in fills if f.client_id in (a, b)]

        every = ours(await ex.fetch_fills(venue.symbol, 0))
        assert [f.client_id for f in every] == [a, b]
        assert [f.ts_ms for f in every] == sorted(f.ts_ms for f in every)
        assert all(f.symbol == venue.symbol and f.side is Side.BUY for f in every)
        assert sum(f.qty for f in every) == 2 * venue.qty
        assert [f.price for f in every] == [venue.below(1), venue.below(2)]
        assert len({f.trade_id for f in every}) == 2
        since = every[-1].ts_ms
        assert ours(await ex.fetch_fills(venue.symbol, since)) == [
            f for f in every if f.ts_ms >= since
        ]
        assert ours(await ex.fetch_fills(venue.symbol, since + 1)) == []
        assert ours(await ex.fetch_fills(venue.other_symbol, 0)) == []

    run_with(exchange_factory, scenario)


def test_stream_orders_delivers_each_state_change_in_order(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex, a, b = venue.exchange, new_id(), new_id()
        stream = ex.stream_orders([venue.symbol])
        await ex.place_order(venue.buy(a, 1))
        await ex.place_order(venue.buy(b, 2))
        await ex.cancel_order(venue.symbol, b)
        await venue.move_price(venue.symbol, venue.below(1))
        seen: dict[str, list[OrderStatus]] = {a: [], b: []}
        while not (seen[a][-1:] == [FILLED] and seen[b][-1:] == [CANCELED]):
            update = await next_update(stream)
            assert update.symbol == venue.symbol
            if update.client_id in seen:
                seen[update.client_id].append(update.status)
        assert collapse(seen[a]) == [OPEN, FILLED]
        assert collapse(seen[b]) == [OPEN, CANCELED]

    run_with(exchange_factory, scenario)


def test_close_ends_open_streams(exchange_factory):
    async def scenario(venue: Venue) -> None:
        stream = venue.exchange.stream_orders([venue.symbol])
        reader = asyncio.create_task(anext(stream))
        await asyncio.sleep(POLL_S)  # the reader is waiting for an update
        await venue.exchange.close()
        with pytest.raises((StopAsyncIteration, StreamDisconnected)):
            await asyncio.wait_for(reader, TIMEOUT_S)  # it ends; it does not wait forever

    run_with(exchange_factory, scenario)


def test_check_health_is_ok(exchange_factory):
    async def scenario(venue: Venue) -> None:
        report = await venue.exchange.check_health()
        assert report.ok, report.detail

    run_with(exchange_factory, scenario)


def test_load_markets_describes_known_symbols_and_refuses_unknown_ones(exchange_factory):
    async def scenario(venue: Venue) -> None:
        ex = venue.exchange
        rules = await ex.load_markets([venue.symbol, venue.other_symbol])
        assert set(rules) == {venue.symbol, venue.other_symbol}
        for symbol, r in rules.items():
            assert r.symbol == symbol and r.tick_size > 0 and r.lot_size > 0
            assert venue.price % r.tick_size == 0 and venue.step % r.tick_size == 0
            assert venue.qty % r.lot_size == 0 and venue.qty >= r.min_qty
            assert venue.below(3) * venue.qty >= r.min_notional
        with pytest.raises(ConfigError):
            await ex.load_markets([venue.symbol, "NOSUCHMARKET"])

    run_with(exchange_factory, scenario)


async def _off_tick(venue: Venue) -> None:
    rules = (await venue.exchange.load_markets([venue.symbol]))[venue.symbol]
    request = venue.buy(new_id())
    await venue.exchange.place_order(
        OrderRequest(
            request.symbol,
            request.client_id,
            Side.BUY,
            request.price + rules.tick_size / 2,
            request.qty,
        )
    )


async def _zero_qty(venue: Venue) -> None:
    request = venue.buy(new_id())
    await venue.exchange.place_order(
        OrderRequest(request.symbol, request.client_id, Side.BUY, request.price, D(0))
    )


async def _tiny_notional(venue: Venue) -> None:
    rules = (await venue.exchange.load_markets([venue.symbol]))[venue.symbol]
    await venue.exchange.place_order(
        OrderRequest(venue.symbol, new_id(), Side.BUY, rules.tick_size, rules.min_qty)
    )


async def _post_only_crossing(venue: Venue) -> None:
    await venue.exchange.place_order(venue.buy(new_id(), -1, post_only=True))


async def _unknown_symbol_order(venue: Venue) -> None:
    await venue.exchange.place_order(
        OrderRequest("NOSUCHMARKET", new_id(), Side.BUY, venue.below(1), venue.qty)
    )


BAD_CALLS = {
    "fetch unknown order": (
        lambda v: v.exchange.fetch_order(v.symbol, new_id("never")),
        OrderNotFound,
    ),
    "cancel unknown order": (
        lambda v: v.exchange.cancel_order(v.symbol, new_id("never")),
        OrderNotFound,
    ),
    "price off the tick": (_off_tick, OrderRejected),
    "zero qty": (_zero_qty, OrderRejected),
    "notional below the minimum": (_tiny_notional, OrderRejected),
    "post-only that would cross": (_post_only_crossing, PostOnlyRejected),
    "order on an unknown symbol": (_unknown_symbol_order, MMError),
    "unknown market": (lambda v: v.exchange.load_markets(["NOSUCHMARKET"]), ConfigError),
    "open orders of an unknown symbol": (
        lambda v: v.exchange.fetch_open_orders("NOSUCHMARKET"),
        MMError,
    ),
}


@pytest.mark.parametrize("call", sorted(BAD_CALLS))
def test_errors_raised_are_mm_errors(exchange_factory, call):
    make_call, expected = BAD_CALLS[call]

    async def scenario(venue: Venue) -> None:
        try:
            await make_call(venue)
        except MMError as e:
            assert isinstance(e, expected), f"{call}: {type(e).__name__} is not {expected.__name__}"
        except Exception as e:  # anything else breaks the port's promise
            pytest.fail(f"{call}: raised {type(e).__module__}.{type(e).__name__}: {e}")
        else:
            pytest.fail(f"{call}: no error raised")
        assert (await venue.exchange.check_health()).ok

    run_with(exchange_factory, scenario)
