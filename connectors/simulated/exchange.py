"""SimulatedExchange: the `Exchange` port over an in-process matching engine and price feeds.

Owns: the simulated venue — markets, order entry checks, matching against the price path, fees,
balances/positions, order/price/kline/account streams, fault injection and optional persistence.
Must not: know who its client is (no `if backtest:`); a backtest drives it with `advance()`, live
use runs its feed loop with `start()`.

Order entry, in order: faults before processing -> duplicate client id -> rules (tick, lot, min
qty, min notional) -> post-only crossing -> reduce-only -> funds lock -> rest or take at the last
price. A post-only order that would cross the last price is refused; a crossing limit order
fills at once at the last price as taker. Resting orders fill at their own price (maker) when the
path reaches them.

Symbols: `BTCUSDT` is the spot market, `BTCUSDT-PERP` the linear perpetual; both follow one feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from connectors.simulated import markets, state
from connectors.simulated.account import Account
from connectors.simulated.book import Book, SimOrder
from connectors.simulated.faults import FaultConfig, Faults
from connectors.simulated.feeds import LiveFeed, PricePath
from connectors.simulated.klines import KlineHistory
from connectors.simulated.streams import Hub
from mm.core.model import (
    AccountUpdate,
    Balance,
    Candle,
    Fill,
    MarketRules,
    MarketType,
    OrderReport,
    OrderRequest,
    OrderStatus,
    Position,
    PriceTick,
    Side,
)
from mm.core.rounding import is_multiple, size_problem, snap
from mm.errors import (
    ConfigError,
    DuplicateOrder,
    InvalidOrder,
    OrderNotFound,
    PostOnlyRejected,
    RequestTimeout,
)
from mm.ports import Clock, HealthReport

PERP_SUFFIX = "-PERP"
MIN_SLOT_MS = 2  # spread feeds: markets moving together are at least this far apart
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal(100_000)})
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0005")
    leverage: Decimal = Decimal(10)
    volatility: float = 0.0005  # per candle of the random walk (4 path points)
    seed: int = 0
    tick_interval_ms: int = 250
    spread_feeds: bool = True  # markets move at their own offsets within an interval
    start_prices: dict[str, Decimal] = field(default_factory=dict)
    replay: dict[str, PricePath] = field(default_factory=dict)  # base symbol -> path to replay
    partial_fill_ratio: Decimal = Decimal(1)
    consistency_window_ms: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    persist_path: Path | None = None
    persist_every_ms: int = 0  # 0: save on every change; N: at most every N ms (and on close)


def rules_for(symbol: str) -> MarketRules | None:
    if symbol.endswith(PERP_SUFFIX):
        rules = markets.rules_for(symbol[: -len(PERP_SUFFIX)], MarketType.LINEAR)
        return None if rules is None else _renamed(rules, symbol)
    return markets.rules_for(symbol, MarketType.SPOT)


def _renamed(rules: MarketRules, symbol: str) -> MarketRules:
    return MarketRules(
        symbol,
        rules.base,
        rules.quote,
        rules.market_type,
        rules.tick_size,
        rules.lot_size,
        rules.min_qty,
        rules.min_notional,
    )


def _base_symbol(symbol: str) -> str:
    return symbol[: -len(PERP_SUFFIX)] if symbol.endswith(PERP_SUFFIX) else symbol


class SimulatedExchange:
    name = "simulated"

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.consistency_window_ms = config.consistency_window_ms
        self.faults = Faults(config.faults)
        self.account = Account(
            dict(config.balances),
            maker_fee_rate=config.maker_fee_rate,
            taker_fee_rate=config.taker_fee_rate,
            leverage=config.leverage,
        )
        self._rules: dict[str, MarketRules] = {}
        for base in markets.SYMBOLS:
            for sym in (base, base + PERP_SUFFIX):
                self._rules[sym] = rules_for(sym)  # type: ignore[assignment]
        self._books = {sym: Book() for sym in self._rules}
        self._orders: dict[str, SimOrder] = {}  # client id -> order (every order ever accepted)
        self._fills: dict[str, list[Fill]] = {sym: [] for sym in self._rules}
        self._feeds: dict[str, LiveFeed] = {}
        self._last: dict[str, int] = {}  # base symbol -> last price in ticks
        self._klines = {base: KlineHistory() for base in markets.SYMBOLS}
        self._counters = {"order": 0, "trade": 0}
        self.hub = Hub(self.faults)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._saved_ms = 0
        self._dirty = False
        self.step_errors = 0
        for base in markets.SYMBOLS:
            tick = self._rules[base].tick_size
            start = config.start_prices.get(base, markets.start_price(base))
            self._feeds[base] = LiveFeed(
                tick,
                start,
                volatility=config.volatility,
                seed=config.seed * 7919 + markets.SYMBOLS.index(base),
                path=config.replay.get(base),
            )
            self._last[base] = int((snap(start, tick) / tick).to_integral_value())
        if config.persist_path is not None:
            self._restore(Path(config.persist_path))
        for base in markets.SYMBOLS:  # a venue always has a last price
            tick_size = self._rules[base].tick_size
            self._klines[base].add(clock.now_ms(), self._last[base] * tick_size)

    # -- persistence --------------------------------------------------------------------------
    def _restore(self, path: Path) -> None:
        saved = state.load(path, self.account)
        if saved is None:
            return
        for order in saved["orders"]:
            self._orders[order.client_id] = order
            if not order.status.is_terminal:
                self._books[order.symbol].add(order)
        for fill in saved["fills"]:
            self._fills[fill.symbol].append(fill)
        self._last.update(saved["last_ticks"])
        for base, feed_state in saved["feeds"].items():
            self._feeds[base].restore(feed_state)
        self._counters.update(saved["counters"])

    def _save(self, *, force: bool = False) -> None:
        if self.config.persist_path is None:
            return
        now = self.clock.now_ms()
        if not force and now - self._saved_ms < self.config.persist_every_ms:
            self._dirty = True  # written by a later save, at the latest on close()
            return
        self._saved_ms, self._dirty = now, False
        state.dump(
            Path(self.config.persist_path),
            orders=list(self._orders.values()),
            fills=[f for fills in self._fills.values() for f in fills],
            account=self.account,
            last_ticks=self._last,
            feeds={base: feed.state() for base, feed in self._feeds.items()},
            counters=self._counters,
        )

    # -- helpers ------------------------------------------------------------------------------
    def _market(self, symbol: str) -> MarketRules:
        rules = self._rules.get(symbol)
        if rules is None:
            raise InvalidOrder(f"unknown symbol {symbol!r}")
        return rules

    async def _enter(self, op: str) -> None:
        if self.config.faults.latency_ms:
            await self.clock.sleep(self.config.faults.latency_ms / 1000)
        self.faults.before_call(op)

    def _visible(self, order: SimOrder) -> bool:
        return self.clock.now_ms() - order.created_ms >= self.config.consistency_window_ms

    def last_price(self, symbol: str) -> Decimal:
        rules = self._market(symbol)
        return self._last[_base_symbol(symbol)] * rules.tick_size

    def thresholds(self, symbol: str) -> tuple[int | None, int | None]:
        """(best bid, best ask) of resting orders in ticks: the prices at which something fills."""
        book = self._books[symbol]
        return book.best_bid, book.best_ask

    # -- order entry ---------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderReport:
        await self._enter("place_order")
        report = self._accept(request)
        if self.faults.timeout_after_accept("place_order"):
            raise RequestTimeout("place_order: simulated timeout after the order was accepted")
        return report

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        out: list[OrderReport | Exception] = []
        for request in requests:
            try:
                out.append(await self.place_order(request))
            except Exception as e:  # each slot carries its own outcome
                out.append(e)
        return out

    def _check(self, request: OrderRequest, rules: MarketRules) -> None:
        if request.client_id in self._orders:
            raise DuplicateOrder(f"client order id {request.client_id} already used")
        if not (request.price.is_finite() and request.qty.is_finite()):
            raise InvalidOrder(f"price {request.price} and qty {request.qty} must be finite")
        if request.price <= 0 or not is_multiple(request.price, rules.tick_size):
            raise InvalidOrder(f"price {request.price} is not a multiple of {rules.tick_size}")
        if not is_multiple(request.qty, rules.lot_size):
            raise InvalidOrder(f"qty {request.qty} is not a multiple of {rules.lot_size}")
        problem = size_problem(request.price, request.qty, rules)
        if problem:
            raise InvalidOrder(f"{problem}: {request.qty} @ {request.price}")
        if request.reduce_only and rules.market_type is MarketType.SPOT:
            raise InvalidOrder("reduce-only is only valid on perpetual markets")
        if self.faults.reject("place_order"):
            raise InvalidOrder("simulated reject")

    def _accept(self, request: OrderRequest) -> OrderReport:
        rules = self._market(request.symbol)
        self._check(request, rules)
        ticks = int(request.price / rules.tick_size)
        last = self._last[_base_symbol(request.symbol)]
        crosses = ticks >= last if request.side is Side.BUY else ticks <= last
        if request.post_only and crosses:
            raise PostOnlyRejected(f"post-only {request.side.name} @ {request.price} would take")
        if request.reduce_only:
            self.account.check_reduce_only(rules, request.side, request.qty)
        asset, per_unit = self.account.lock_per_unit(
            rules, request.side, request.price, request.reduce_only
        )
        self.account.lock(asset, per_unit * request.qty)
        now = self.clock.now_ms()
        self._counters["order"] += 1
        order = SimOrder(
            exchange_id=str(self._counters["order"]),
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            price=request.price,
            ticks=ticks,
            qty=request.qty,
            post_only=request.post_only,
            reduce_only=request.reduce_only,
            created_ms=now,
            seq=self._counters["order"],
            lock_asset=asset,
            lock_per_unit=per_unit,
            updated_ms=now,
        )
        self._orders[order.client_id] = order
        if crosses:
            self._fill(order, order.remaining, last * rules.tick_size, maker=False, ts=now)
        else:
            self._books[order.symbol].add(order)
        self.hub.order(order.report())
        self._save()
        return order.report()

    # -- execution -----------------------------------------------------------------------------
    def _fill(self, order: SimOrder, qty: Decimal, price: Decimal, *, maker: bool, ts: int) -> None:
        """Execute `qty` (capped for reduce-only); the rest of a reduce-only order may expire."""
        rules = self._rules[order.symbol]
        if order.reduce_only:
            qty = min(qty, self.account.reducible(order.symbol, order.side))
        if qty > 0:
            self.account.unlock(order.lock_asset, order.lock_per_unit * qty)
            fee = self.account.fee(price * qty, maker)
            self.account.settle(rules, order.side, qty, price, fee)
            order.filled += qty
            order.cost += price * qty
            order.fee += fee
            order.updated_ms = ts
            order.status = (
                OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
            )
            self._counters["trade"] += 1
            fill = Fill(
                order.symbol,
                str(self._counters["trade"]),
                order.client_id,
                order.exchange_id,
                order.side,
                price,
                qty,
                fee,
                ts,
                maker,
            )
            self._fills[order.symbol].append(fill)
        if (
            order.remaining > 0
            and order.reduce_only
            and not self.account.reducible(order.symbol, order.side)
        ):
            self._finish(order, OrderStatus.EXPIRED, ts)

    def _finish(self, order: SimOrder, status: OrderStatus, ts: int) -> None:
        self.account.unlock(order.lock_asset, order.lock_per_unit * order.remaining)
        order.status = status
        order.updated_ms = ts
        self._books[order.symbol].remove(order)

    def advance(self, symbol: str, ticks: int, ts_ms: int) -> list[OrderReport]:
        """Move `symbol`'s price (both its spot and perp markets) and match resting orders."""
        base = _base_symbol(symbol)
        self._last[base] = ticks
        reports: list[OrderReport] = []
        for sym in (base, base + PERP_SUFFIX):
            book = self._books[sym]
            if not len(book):
                continue
            best_bid, best_ask = book.best_bid, book.best_ask
            if (best_bid is None or best_bid < ticks) and (best_ask is None or best_ask > ticks):
                continue
            reports += self._match(sym, book, ts_ms)
        if reports:
            for report in reports:
                self.hub.order(report)
            self.hub.account(self._account_update(ts_ms))
            self._save()
        return reports

    def _match(self, symbol: str, book: Book, ts_ms: int) -> list[OrderReport]:
        rules = self._rules[symbol]
        ratio = self.config.partial_fill_ratio
        reports = []
        for order in book.crossing(self._last[_base_symbol(symbol)]):
            qty = order.remaining
            if ratio < 1:
                qty = min(qty, max(rules.lot_size, snap(order.qty * ratio, rules.lot_size, "down")))
            self._fill(order, qty, order.price, maker=True, ts=ts_ms)
            if order.status is OrderStatus.FILLED:
                book.remove(order)
            reports.append(order.report())
        return reports

    def force_fill(self, symbol: str, client_id: str, qty: Decimal) -> OrderReport:
        """Fill part of a resting order at its price, whatever the market does (scenario tests)."""
        order = self._orders.get(client_id)
        if order is None or order.symbol != symbol or order.status.is_terminal:
            raise OrderNotFound(f"no open order {client_id} on {symbol}")
        self._fill(
            order, min(qty, order.remaining), order.price, maker=True, ts=self.clock.now_ms()
        )
        if order.status is OrderStatus.FILLED:
            self._books[symbol].remove(order)
        report = order.report()
        self.hub.order(report)
        self._save()
        return report

    def set_price(self, symbol: str, price: Decimal) -> list[OrderReport]:
        """Move the market to `price` now (tests and tools); publishes the tick."""
        rules = self._market(symbol)
        ts = self.clock.now_ms()
        reports = self.advance(symbol, int(snap(price, rules.tick_size) / rules.tick_size), ts)
        self._publish_tick(_base_symbol(symbol), ts)
        self._save()
        return reports

    # -- cancel / query ------------------------------------------------------------------------
    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        await self._enter("cancel_order")
        order = self._orders.get(client_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(f"no order {client_id} on {symbol}")
        if not order.status.is_terminal:
            self._finish(order, OrderStatus.CANCELED, self.clock.now_ms())
            self.hub.order(order.report())
            self._save()
        if self.faults.timeout_after_accept("cancel_order"):
            raise RequestTimeout("cancel_order: simulated timeout after the cancel was processed")
        return order.report()

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        await self._enter("cancel_all")
        self._market(symbol)
        out = []
        now = self.clock.now_ms()
        for order in self._books[symbol].orders():
            self._finish(order, OrderStatus.CANCELED, now)
            out.append(order.report())
            self.hub.order(out[-1])
        self._save()
        return out

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        await self._enter("fetch_order")
        order = self._orders.get(client_id)
        if order is None or order.symbol != symbol or not self._visible(order):
            raise OrderNotFound(f"no order {client_id} on {symbol}")
        return order.report()

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        await self._enter("fetch_open_orders")
        self._market(symbol)
        return [o.report() for o in self._books[symbol].orders() if self._visible(o)]

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        await self._enter("fetch_fills")
        self._market(symbol)
        return [f for f in self._fills[symbol] if f.ts_ms >= since_ms]

    async def fetch_balances(self) -> dict[str, Balance]:
        await self._enter("fetch_balances")
        return self.account.balances()

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        await self._enter("fetch_positions")
        return {s: self.account.position_view(s) for s in symbols}

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        await self._enter("fetch_klines")
        self._market(symbol)
        return self._klines[_base_symbol(symbol)].candles(interval, since_ms, limit)

    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        await self._enter("load_markets")
        unknown = [s for s in symbols if s not in self._rules]
        if unknown:
            listed = ", ".join(sorted(self._rules))
            raise ConfigError(
                f"symbols {unknown} are not listed by the simulated exchange: {listed}"
            )
        return {s: self._rules[s] for s in symbols}

    async def describe(self) -> None:
        """Nothing to learn: the facts are the config's."""

    async def check_health(self) -> HealthReport:
        return HealthReport(ok=not self._closed, detail="closed" if self._closed else "")

    # -- streams ------------------------------------------------------------------------------
    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        return self.hub.subscribe("price", set(symbols))

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        return self.hub.subscribe("order", set(symbols))

    def stream_klines(self, symbol: str, interval: str) -> AsyncIterator[Candle]:
        return self.hub.subscribe("kline", {symbol}, interval=interval)

    def stream_account(self) -> AsyncIterator[AccountUpdate]:
        return self.hub.subscribe("account", set())

    def _account_update(self, ts_ms: int) -> AccountUpdate:
        positions = tuple(
            self.account.position_view(s) for s, p in self.account.positions.items() if p.qty
        )
        return AccountUpdate(tuple(self.account.balances().values()), positions, ts_ms)

    def _publish_tick(self, base: str, ts_ms: int) -> None:
        tick = self._rules[base].tick_size
        price = self._last[base] * tick
        self._klines[base].add(ts_ms, price)
        for sym in (base, base + PERP_SUFFIX):
            self.hub.tick(PriceTick(sym, price, ts_ms))
        if self.hub.wants_klines(base):
            self.hub.klines(base, self._klines[base], PERP_SUFFIX)

    # -- live feed ------------------------------------------------------------------------------
    def step(self, bases: Collection[str] | None = None) -> None:
        """Advance every market (or those of `bases`) one point of its feed and publish."""
        ts = self.clock.now_ms()
        for base, feed in self._feeds.items():
            if bases is not None and base not in bases:
                continue
            ticks = feed.next()
            if ticks is None:
                continue
            self.advance(base, ticks, ts)
            self._publish_tick(base, ts)
        self._save()

    def feed_groups(self) -> list[list[str]]:
        """The markets stepped together by the live feed, in the order they move within one
        tick interval: all at once, or (`spread_feeds`) spread over the interval in slots of
        at least `MIN_SLOT_MS`, market i in slot i mod slots (as a real venue's per-market
        streams, which do not all arrive in the same instant)."""
        bases = list(self._feeds)
        if not self.config.spread_feeds or not bases:
            return [bases]
        slots = max(1, min(len(bases), self.config.tick_interval_ms // MIN_SLOT_MS))
        return [bases[k::slots] for k in range(slots)]

    async def _run(self) -> None:
        """The feed loop never dies: a failing step is logged and counted, the next one runs."""
        groups = self.feed_groups()
        slot_ms = self.config.tick_interval_ms / len(groups)
        due = float(self.clock.now_ms())
        while not self._closed:
            for group in groups:
                due += slot_ms  # paced by deadlines: the time a step takes is not added on
                now = self.clock.now_ms()
                behind = now - due
                # Stalled: resume from now, do not catch up in a burst. Or the wall clock was
                # stepped back (NTP): resume from now rather than wait out the step.
                if abs(behind) > self.config.tick_interval_ms:
                    due, behind = float(now), 0.0
                await self.clock.sleep(max(0.0, -behind) / 1000)
                try:
                    self.step(group)
                except Exception:
                    self.step_errors += 1
                    log.exception("simulated feed step failed")

    def start(self) -> None:
        """Run the price feed in the background (live simulation)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-feed")

    async def close(self) -> None:
        if self._dirty:
            self._save(force=True)
        self._closed = True
        self.hub.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- inspection (tests, invariants) --------------------------------------------------------
    def orders(self, symbol: str) -> list[SimOrder]:
        return [o for o in self._orders.values() if o.symbol == symbol]
