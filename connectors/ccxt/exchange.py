"""CcxtExchange: the `Exchange` port over ccxt (REST via `ccxt.async_support`, streams via
`ccxt.pro`, which extends it: one client object does both).

Owns: symbol mapping (our `BTCUSDT` / `BTCUSDT-PERP` <-> ccxt's `BTC/USDT` / `BTC/USDT:USDT`),
market rules from the loaded markets, conversion of ccxt's unified structures to our model,
error mapping (`errors.py`), stream liveness, and one account-wide pause after a rate limit.
Must not: retry a state-changing call (the engine resolves `RequestTimeout` by client id) or
hard-code any precision, asset or symbol.

- Numbers: ccxt's unified structures carry floats; each is read back through `repr` (the
  shortest string that round-trips), which recovers the venue's decimal string exactly for the
  up-to-15-significant-digit values venues send, then checked against the market's tick/lot.
- Streams: each `watch_*` call is bounded by `stale_after_s`; no message in that time means the
  stream is dead even if the socket looks open (`StreamDisconnected`). The caller resubscribes
  (ccxt reconnects on the next watch) and gap-fills over REST, as for every venue. A halting
  error (`OperationalError`: the key revoked, a missing parameter) ends a stream as itself, so
  the driver stops instead of resubscribing forever. ccxt shares
  one Future between the callers waiting for the same message, so closing one stream must not
  cancel another's wait: every order stream is fed by one reader (`order_feed.py`), and the
  other streams' waits are shielded (`_watch`).
- Units: quantities are in base everywhere in our model; gate and okx count linear orders,
  trades and positions in contracts (`contractSize` base each), so they are converted here, both
  ways, and the market's lot and min qty are given in base too. An order must be whole lots of
  contracts (the lot check in base says the same), so the division is exact.
- Lookups: by our client id, as the port asks; where the venue looks client ids up for a while
  only after an order ends (gate), the exchange id seen for it is asked for instead, or the
  venue's recent finished orders are searched (`lookup.py`).
- Fees: the cumulative fee of an order is the sum of its trades' fees in quote, learned from the
  order stream and from `fetch_my_trades` (a venue's order query does not carry it); a fee in
  base is converted at its trade's price, one in another asset is kept apart (`fees.py`). A
  `Fill`'s fee is in quote the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

from ccxt.base.decimal_to_precision import TICK_SIZE

from connectors.ccxt import position_mode
from connectors.ccxt.config import CcxtConfig, new_client
from connectors.ccxt.config import override_urls as override_urls  # their old home, still used
from connectors.ccxt.config import urls_in as urls_in  # by tests/test_network_guard.py
from connectors.ccxt.errors import is_bug, to_mm
from connectors.ccxt.fees import FeeBook, in_quote
from connectors.ccxt.lookup import OrderLookup, Recent
from connectors.ccxt.order_feed import OrderFeed
from connectors.ccxt.parse import ONE, STATUS, updated_ms
from connectors.ccxt.parse import in_base as _in_base
from connectors.ccxt.parse import num as _num
from connectors.ccxt.parse import seconds as _seconds
from connectors.ccxt.venues import VENUES, Venue
from mm.core.model import (
    ZERO,
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
from mm.core.rounding import is_multiple, size_problem
from mm.errors import (
    ConfigError,
    DuplicateOrder,
    InvalidArgument,
    InvalidOrder,
    MMError,
    OperationalError,
    OrderNotFound,
    PostOnlyRejected,
    RateLimited,
    StreamDisconnected,
)
from mm.ports import HealthReport

log = logging.getLogger(__name__)
PERP = "-PERP"
DEFAULT_PAUSE_S = 1.0  # after a rate limit without Retry-After
SENT_MEMORY = 100_000  # client ids remembered as sent (a re-send of one is looked up first)
MAX_BUGS = 100  # distinct bugs inside ccxt logged with their traceback (then: counted as outages)


class CcxtExchange:
    def __init__(self, config: CcxtConfig, *, now_s: Callable[[], float] = time.time) -> None:
        if config.venue not in VENUES:
            raise ConfigError(f"venue {config.venue!r}: one of {sorted(VENUES)}")
        if config.market not in ("spot", "linear"):
            raise ConfigError(f"market {config.market!r}: spot or linear")
        self.config = config
        self.venue: Venue = VENUES[config.venue]
        self.name = f"{config.venue}-{config.market}"
        self.consistency_window_ms = 0
        self.client = new_client(config, self.venue)
        self._markets: dict[str, dict[str, Any]] = {}  # our symbol -> ccxt market
        self._rules_of: dict[str, MarketRules] = {}
        self._sizes: dict[str, Decimal] = {}  # our symbol -> base per venue unit (contract)
        self._ours: dict[str, str] = {}  # ccxt symbol -> our symbol
        self._cids = Recent()  # exchange order id -> client id, the most recent 100,000
        # finds an order by client id, also past the venue's lookup window; remembers exchange ids
        self._lookup = OrderLookup(self.venue, config.market, self._call, now_s)
        self._fees = FeeBook()
        self._pause_until = 0.0
        # found one-way: the account (`position_mode.ACCOUNT`) or, per symbol, ccxt symbols
        self._mode_checked: set[str] = set()
        self._orders = OrderFeed(
            prepare=self._ensure_markets,
            login=self._login,
            watch=self._next_orders,
            symbol_of=lambda order: self._ours.get(order["symbol"]),
            report=self._report,
        )
        self._bugs: set[tuple[str, str]] = set()  # kinds of bugs inside ccxt already logged
        self._sent: OrderedDict[str, None] = OrderedDict()  # client ids sent, oldest first

    # -- plumbing ---------------------------------------------------------------------------------
    async def _call(
        self,
        what: str,
        method: str,
        *args: Any,
        changes_state: bool = False,
        after_subscriptions: bool = True,
    ) -> Any:
        """One ccxt call under the account-wide pause; failures become `mm.errors`."""
        pending = self._orders.pending
        if pending and after_subscriptions:  # subscriptions started earlier go first
            await asyncio.wait(list(pending), timeout=self.config.stale_after_s)
        delay = self._pause_until - time.monotonic()
        if delay > 0:  # the venue said "too many requests": everyone waits, not one symbol
            await asyncio.sleep(delay)
        try:
            return await getattr(self.client, method)(*args)
        except MMError:
            raise
        except Exception as e:
            self._surface(what, e)
            error = to_mm(e, self.venue, call=what, changes_state=changes_state)
            if isinstance(error, RateLimited):
                # 429/418: honour the venue's Retry-After (seconds), account-wide
                headers = getattr(self.client, "last_response_headers", None) or {}
                retry = _seconds(headers.get("Retry-After") or headers.get("retry-after"))
                pause = retry or error.retry_after_s or DEFAULT_PAUSE_S
                error.retry_after_s = pause
                self._pause_until = max(self._pause_until, time.monotonic() + pause)
            raise error from e

    def _surface(self, what: str, error: Exception) -> None:
        """A bug inside ccxt (`is_bug`) is still mapped, so retried like an outage; it is logged
        once per kind at error level with its traceback, so it does not loop unseen."""
        if not is_bug(error):
            return
        kind = (type(error).__name__, str(error)[:200])
        if kind in self._bugs or len(self._bugs) >= MAX_BUGS:
            return
        self._bugs.add(kind)
        log.error(
            "%s: %s raised inside ccxt: a bug, not the venue (retried as an outage): %s",
            what,
            type(error).__name__,
            error,
            exc_info=error,
        )

    def _market(self, symbol: str) -> dict[str, Any]:
        market = self._markets.get(symbol)
        if market is None:
            raise InvalidArgument(f"{symbol}: not loaded (call load_markets with it first)")
        return market

    async def describe(self) -> None:
        """Nothing to learn remotely: lookups by client id are consistent on these venues."""

    # -- markets ----------------------------------------------------------------------------------
    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        # market data only: it never waits for a subscription (which may need it first)
        markets = await self._call("load_markets", "load_markets", after_subscriptions=False)
        out: dict[str, MarketRules] = {}
        unknown = []
        for symbol in symbols:
            market = self._find(markets, symbol)
            if market is None:
                unknown.append(symbol)
                continue
            self._markets[symbol] = market
            self._ours[market["symbol"]] = symbol
            self._sizes[symbol] = self._contract_size(symbol, market)
            out[symbol] = self._rules_of[symbol] = self._rules(symbol, market)
        if unknown:
            raise ConfigError(f"{self.name} does not list {unknown}")
        await self._check_position_mode([self._markets[symbol]["symbol"] for symbol in out])
        return out

    async def _check_position_mode(self, unified: list[str]) -> None:
        """Perpetuals: the grid reasons about one net position per symbol (`Venue.position_mode`),
        so an account in hedge mode is refused (`ConfigError`: halt). The mode is read by ccxt
        where it can, else from the venue's documented endpoint (`position_mode.py`); without
        credentials nothing is asked. Asked once per account, or per symbol where the venue sets
        it per symbol (bybit); a one-way answer is remembered, a hedged one asked again."""
        if self.config.market != "linear" or not self.config.api_key:
            return
        has_fetch = bool(self.client.has.get("fetchPositionMode"))
        for key in position_mode.keys(self.venue, has_fetch, unified):
            if key in self._mode_checked:
                continue
            market = self.client.market(key or unified[0])
            hedged = await position_mode.hedged(
                self._call, self.venue, self.name, has_fetch, market
            )
            if hedged and self.venue.position_mode == "one-way":
                raise ConfigError(
                    f"{self.name}: the account is in hedge (dual-side) position mode"
                    f"{f' on {key}' if key else ''}; the grid needs one-way (net) mode: switch "
                    f"it at the venue, then start again"
                )
            if hedged is not None:
                self._mode_checked.add(key)

    def _find(self, markets: dict[str, Any], symbol: str) -> dict[str, Any] | None:
        """Our `BTCUSDT` is the spot market whose base+quote spell it; `BTCUSDT-PERP` the
        linear perpetual settled in its quote."""
        perp = symbol.endswith(PERP)
        name = symbol.removesuffix(PERP)
        for market in markets.values():
            if f"{market['base']}{market['quote']}" != name or not market.get("active", True):
                continue
            if perp and market.get("swap") and market.get("linear"):
                return market
            if not perp and market.get("spot"):
                return market
        return None

    def _rules(self, symbol: str, market: dict[str, Any]) -> MarketRules:
        precision = market["precision"]
        tick, lot = self._step(precision.get("price")), self._step(precision.get("amount"))
        if tick <= 0 or lot <= 0:
            raise ConfigError(f"{symbol}: the venue gives no tick or lot size")
        limits = market.get("limits") or {}
        size = self._sizes[symbol]  # the venue's lot and min qty count contracts: ours, base
        return MarketRules(
            symbol=symbol,
            base=market["base"],
            quote=market["quote"],
            market_type=MarketType.LINEAR if symbol.endswith(PERP) else MarketType.SPOT,
            tick_size=tick,
            lot_size=_in_base(lot, size),
            min_qty=_in_base(_num((limits.get("amount") or {}).get("min")), size),
            min_notional=_num((limits.get("cost") or {}).get("min")),
        )

    @staticmethod
    def _contract_size(symbol: str, market: dict[str, Any]) -> Decimal:
        """Base per unit the venue counts in: 1 on spot (and where a contract is 1 base, kept
        as exactly 1 so such quantities pass through unchanged)."""
        if not market.get("contract"):
            return ONE
        size = _num(market.get("contractSize"))
        if size <= 0:
            raise ConfigError(f"{symbol}: the venue gives no contract size")
        return ONE if size == ONE else size

    def _step(self, value: Any) -> Decimal:
        if value is None:
            return ZERO
        if self.client.precisionMode == TICK_SIZE:
            return _num(value)  # the step itself
        return Decimal(1).scaleb(-int(_num(value)))  # DECIMAL_PLACES: a number of digits

    # -- orders -----------------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Idempotent by client id: an id the venue holds an order for is `DuplicateOrder`, also
        where the venue itself would accept it again (`_check_resend`)."""
        market = self._market(request.symbol)
        rules = self._rules_of[request.symbol]
        # ccxt would round an off-grid price or size to the market's precision and send *that*:
        # an order we did not decide. Refuse it instead, as the venue's own filters would.
        if not (is_multiple(request.price, rules.tick_size) and request.price > 0):
            raise InvalidOrder(f"price {request.price} is not a multiple of {rules.tick_size}")
        if not is_multiple(request.qty, rules.lot_size):
            raise InvalidOrder(f"qty {request.qty} is not a multiple of {rules.lot_size}")
        problem = size_problem(request.price, request.qty, rules)
        if problem is not None:
            raise InvalidOrder(f"{request.client_id}: {problem}")
        if not self.venue.valid_client_id(request.client_id):
            raise InvalidArgument(
                f"client id {request.client_id!r} does not fit {self.venue.ccxt_id}'s format"
            )
        params: dict[str, Any] = {
            self.venue.client_id_param: self.venue.create_id(request.client_id)
        }
        if request.post_only:
            params.update(self.venue.post_only_param)
        if request.reduce_only:
            params.update(self.venue.reduce_only_param)
        await self._check_resend(request)
        order = await self._call(
            f"place_order {request.client_id}",
            "create_order",
            market["symbol"],
            "limit",
            request.side.value.lower(),
            format(self._venue_qty(request), "f"),
            format(request.price, "f"),
            params,
            changes_state=True,
        )
        report = self._report(order, request.symbol, request)
        if report.status is OrderStatus.REJECTED and report.reason == PostOnlyRejected.reason:
            raise PostOnlyRejected(f"{request.client_id}: post-only order would have crossed")
        return report

    async def _check_resend(self, request: OrderRequest) -> None:
        """Before sending a client id this process sent before, ask the venue for it.

        The engine sends again after an uncertain outcome (RequestTimeout, ExchangeUnavailable)
        and counts on the venue refusing a duplicate; but binance's id is unique among *open*
        orders only, so an order that was accepted (answer lost) and has filled since would not
        stop a second one. The first send of an id costs nothing; a re-send costs one lookup and
        goes out only if the venue has no order with that id. The last `SENT_MEMORY` ids are
        remembered."""
        client_id = request.client_id
        if client_id in self._sent:
            self._sent.move_to_end(client_id)
            try:
                found = await self.fetch_order(request.symbol, client_id)
            except OrderNotFound:
                return
            raise DuplicateOrder(
                f"{client_id}: already on the venue ({found.status.value}); not sent again"
            )
        self._sent[client_id] = None
        if len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    def _venue_qty(self, request: OrderRequest) -> Decimal:
        """The order's qty in the venue's unit: contracts where it counts them."""
        size = self._sizes[request.symbol]
        amount = request.qty / size
        if amount * size != request.qty:  # not whole lots: refused by the lot check before
            raise InvalidOrder(f"qty {request.qty} is not a number of {size} contracts")
        return amount

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        out: list[OrderReport | Exception] = []
        for request in requests:  # one by one: each keeps its own outcome and client id
            try:
                out.append(await self.place_order(request))
            except MMError as e:
                out.append(e)
        return out

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        market = self._market(symbol)
        order_id, params = self.venue.lookup(client_id)
        try:
            order = await self._call(
                f"cancel_order {client_id}",
                "cancel_order",
                order_id,
                market["symbol"],
                params,
                changes_state=True,
            )
        except OrderNotFound:
            # gone from the book: its final state (FILLED or CANCELED) answers the cancel
            return await self.fetch_order(symbol, client_id)
        report = self._report(order, symbol)
        if report.status.is_terminal:
            return report
        return await self.fetch_order(symbol, client_id)  # some venues answer before it is final

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        reports = []
        for report in await self.fetch_open_orders(symbol):
            try:
                reports.append(await self.cancel_order(symbol, report.client_id))
            except OrderNotFound:
                continue
        return reports

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        market = self._market(symbol)
        order = await self._lookup.find(market["symbol"], client_id)
        report = self._report(order, symbol)
        if report.filled_qty > 0 and report.fee == 0:
            await self._learn_fees(symbol, market, report.exchange_id)
            report = self._report(order, symbol)
        return report

    async def _learn_fees(self, symbol: str, market: dict[str, Any], exchange_id: str) -> None:
        """The fees of order `exchange_id`, from its trades (each trade is noted against the
        order it names, so a venue without an order filter still gives the right fee)."""
        param = self.venue.trades_order_param[self.config.market]
        trades = await self._call(
            f"fetch_my_trades {symbol}",
            "fetch_my_trades",
            market["symbol"],
            None,
            None,
            {param: exchange_id} if param else {},
        )
        for trade in trades:
            self._note_fee(trade, symbol)

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        market = self._market(symbol)
        orders = await self._call(
            f"fetch_open_orders {symbol}", "fetch_open_orders", market["symbol"]
        )
        return [self._report(o, symbol) for o in orders]

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        market = self._market(symbol)
        trades = await self._call(
            f"fetch_my_trades {symbol}", "fetch_my_trades", market["symbol"], since_ms
        )
        fills = []
        for trade in sorted(trades, key=lambda t: (t["timestamp"] or 0, str(t["id"]))):
            if (trade["timestamp"] or 0) < since_ms:
                continue
            exchange_id = str(trade["order"])
            client_id = self._cids.get(exchange_id) or await self._client_id_of(symbol, exchange_id)
            fee = self._note_fee(trade, symbol)
            fills.append(
                Fill(
                    symbol=symbol,
                    trade_id=str(trade["id"]),
                    client_id=client_id,
                    exchange_id=exchange_id,
                    side=Side.BUY if trade["side"] == "buy" else Side.SELL,
                    price=_num(trade["price"]),
                    qty=_in_base(_num(trade["amount"]), self._sizes[symbol]),
                    fee=fee or ZERO,  # in quote (a fee in another asset is not: fees_elsewhere)
                    ts_ms=int(trade["timestamp"] or 0),
                    is_maker=trade.get("takerOrMaker") == "maker",
                )
            )
        return fills

    async def _client_id_of(self, symbol: str, exchange_id: str) -> str:
        """A trade names its order by the venue's id; ask the venue for the client id once."""
        order = await self._lookup.by_exchange_id(self._market(symbol)["symbol"], exchange_id)
        client_id = self.venue.our_id(str(order.get("clientOrderId") or ""))
        if client_id:
            self._cids.note(exchange_id, client_id)
        return client_id

    async def fetch_balances(self) -> dict[str, Balance]:
        balance = await self._call("fetch_balances", "fetch_balance")
        out = {}
        for asset, free in (balance.get("free") or {}).items():
            used = (balance.get("used") or {}).get(asset)
            out[asset] = Balance(asset, _num(free), _num(used))
        return out

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        perps = [s for s in symbols if s.endswith(PERP)]
        out = {s: Position(s, ZERO) for s in symbols}
        if not perps:
            return out
        unified = [self._market(s)["symbol"] for s in perps]
        for p in await self._call("fetch_positions", "fetch_positions", unified):
            position = self._position(p)
            if position is not None:
                out[position.symbol] = position
        return out

    def _position(self, p: dict[str, Any]) -> Position | None:
        """Our position of one ccxt position (None: not a market of ours)."""
        ours = self._ours.get(p.get("symbol") or "")
        if ours is None:
            return None
        qty = _in_base(_num(p.get("contracts")), self._sizes[ours])
        sign = -1 if p.get("side") == "short" else 1
        return Position(ours, sign * qty, _num(p.get("entryPrice")))

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        market = self._market(symbol)
        rows = await self._call(
            f"fetch_klines {symbol}", "fetch_ohlcv", market["symbol"], interval, since_ms, limit
        )
        return [
            Candle(int(r[0]), _num(r[1]), _num(r[2]), _num(r[3]), _num(r[4]), _num(r[5]))
            for r in rows
        ]

    async def check_health(self) -> HealthReport:
        start = time.perf_counter()
        try:
            await self._call("check_health", "fetch_time")
        except MMError as e:
            return HealthReport(False, str(e), (time.perf_counter() - start) * 1000)
        return HealthReport(True, "", (time.perf_counter() - start) * 1000)

    def fees_elsewhere(self) -> dict[str, Decimal]:
        """Fees charged in an asset other than the market's base or quote (e.g. BNB), summed per
        asset since start: they are in no `OrderReport.fee` or `Fill.fee`, which are in quote."""
        return self._fees.elsewhere()

    # -- conversion -------------------------------------------------------------------------------
    def _note_fee(self, trade: dict[str, Any], symbol: str) -> Decimal | None:
        """Records a trade's fee against its order; returns it in quote (None: another asset)."""
        fee = trade.get("fee") or {}
        cost, currency, price = _num(fee.get("cost")), fee.get("currency"), _num(trade.get("price"))
        client_id = self._cids.get(str(trade.get("order") or ""))
        if client_id is None or trade.get("id") is None:
            return in_quote(cost, currency, price, self._rules_of[symbol])
        return self._fees.note(
            client_id, str(trade["id"]), cost, currency, price, self._rules_of[symbol]
        )

    def _note_streamed_fee(self, order: dict[str, Any], client_id: str, symbol: str) -> None:
        """A streamed update names the trade it reports, that trade's own fee, its asset and
        the trade's price (ccxt's order-level "fee" is a running total once it has cached the
        order: not usable here)."""
        venue, info = self.venue, order.get("info") or {}
        if venue.ws_trade_id is None or venue.ws_trade_fee is None or not client_id:
            return
        trade_id, fee = info.get(venue.ws_trade_id), info.get(venue.ws_trade_fee)
        if trade_id in (None, -1, "-1", "") or fee in (None, ""):
            return
        asset = info.get(venue.ws_trade_fee_asset) if venue.ws_trade_fee_asset else None
        price = _num(info.get(venue.ws_trade_price)) if venue.ws_trade_price else ZERO
        self._fees.note(
            client_id, str(trade_id), _num(fee), asset or None, price, self._rules_of[symbol]
        )

    def _report(
        self, order: dict[str, Any], symbol: str, request: OrderRequest | None = None
    ) -> OrderReport:
        echoed = self.venue.our_id(str(order.get("clientOrderId") or ""))
        client_id = echoed or (request.client_id if request else "")
        exchange_id = str(order.get("id") or "")
        if exchange_id and client_id:
            self._cids.note(exchange_id, client_id)
            self._lookup.ids.note(self.venue.wire_id(client_id), exchange_id)
        for trade in order.get("trades") or ():
            if not trade.get("order"):  # ccxt leaves it None on trades inside an order
                trade["order"] = exchange_id
            self._note_fee(trade, symbol)
        self._note_streamed_fee(order, client_id, symbol)
        size = self._sizes[symbol]
        filled = _in_base(_num(order.get("filled")), size)
        amount = _in_base(_num(order.get("amount")), size) or (request.qty if request else ZERO)
        raw = order.get("status")
        reason = ""
        status = STATUS.get(str(raw)) if raw is not None else OrderStatus.OPEN
        info = order.get("info") or {}
        if status is not OrderStatus.OPEN and not filled and self.venue.crossed_post_only(info):
            # accepted, then cancelled by the venue for crossing: a post-only reject to us
            status, reason = OrderStatus.REJECTED, PostOnlyRejected.reason
        elif status is None:
            # a status ccxt passed through unmapped is the venue's word for how the order
            # *finished* (gate's finish_as: "poc", "stp", ...): never report it as working
            log.warning("%s: venue status %r read as finished", client_id, raw)
            status = OrderStatus.FILLED if amount and filled >= amount else OrderStatus.CANCELED
            reason = str(raw)
        if status is OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.FILLED and filled < amount:  # "closed" also means cancelled
            status = OrderStatus.CANCELED
        fee = self._fees.total(client_id)
        side = order.get("side") or (request.side.value.lower() if request else "buy")
        return OrderReport(
            symbol=symbol,
            client_id=client_id,
            side=Side.BUY if side == "buy" else Side.SELL,
            price=_num(order.get("price")) or (request.price if request else ZERO),
            qty=amount,
            status=status,
            filled_qty=filled,
            avg_price=_num(order.get("average")) if filled else ZERO,
            fee=fee,
            exchange_id=exchange_id,
            ts_ms=updated_ms(order),
            reason=reason,
            post_only=bool(order.get("postOnly")),
            reduce_only=bool(order.get("reduceOnly")),
        )

    # -- streams ----------------------------------------------------------------------------------
    async def _watch(
        self, what: str, method: str, *args: Any, stale_s: float | None = None, shared: bool = True
    ) -> Any:
        """One `watch_*` call, bounded by the liveness watchdog.

        ccxt gives every caller waiting for the same message the same Future. A `shared` call
        is shielded: cancelling this caller (its stream closed, its watchdog tripped) must not
        cancel another stream's wait; the orphaned wait ends with the next message. The order
        feed's reader is alone on its wait by construction and is not shielded: the extra task
        hops would widen the gap between two waits, in which an update is only cached by ccxt
        (and delivered with the next one). A cancel that reaches us from inside ccxt, not from
        our own task, ends the stream instead of leaking out as a CancelledError that looks like
        a shutdown."""
        stale_s = self.config.stale_after_s if stale_s is None else stale_s
        call = getattr(self.client, method)(*args)
        if shared:
            call = asyncio.shield(asyncio.ensure_future(call))
        try:
            async with asyncio.timeout(stale_s):
                return await call
        except TimeoutError:
            raise StreamDisconnected(
                f"{what}: no message for {stale_s}s (dead even if open)"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # we are being cancelled
            raise StreamDisconnected(f"{what}: ccxt's wait was cancelled") from None
        except MMError:
            raise
        except Exception as e:
            self._surface(what, e)
            error = to_mm(e, self.venue, call=what)
            if isinstance(error, OperationalError | InvalidArgument):
                raise error from e  # halting (key revoked, ...): a resubscription cannot help
            raise StreamDisconnected(f"{what}: {error}") from e

    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        """The newest price of each symbol whenever it changed (conflated).

        ccxt's `watch_tickers` returns the message that woke it, while everything that arrived
        since the previous call only updated its ticker cache; so each wake-up reads the cache
        and yields every symbol whose ticker changed: no symbol keeps a stale last price."""

        async def ticks() -> AsyncIterator[PriceTick]:
            await self._ensure_markets(symbols)
            unified = [self._market(s)["symbol"] for s in symbols]
            seen: dict[str, tuple[Any, Any]] = {}
            self._fresh_tickers(unified, seen)  # what the cache held before: not news
            while True:
                fresh = [t for t in self._fresh_tickers(unified, seen)]
                for name, ticker in fresh:
                    yield self._tick(self._ours[name], ticker)
                if not fresh:  # nothing new in the cache: wait for the next message
                    params = dict(self.venue.ticker_params)
                    await self._watch("prices", "watch_tickers", unified, params)

        return ticks()

    def _fresh_tickers(
        self, unified: list[str], seen: dict[str, tuple[Any, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Tickers in ccxt's cache that changed since they were last yielded."""
        out = []
        for name in unified:
            ticker = self.client.tickers.get(name)
            if not ticker or ticker.get("last") is None:
                continue
            stamp = (ticker.get("timestamp"), ticker.get("last"))
            if seen.get(name) != stamp:
                seen[name] = stamp
                out.append((name, ticker))
        return out

    @staticmethod
    def _tick(symbol: str, ticker: dict[str, Any]) -> PriceTick:
        bid, ask = ticker.get("bid"), ticker.get("ask")
        return PriceTick(
            symbol,
            _num(ticker["last"]),
            int(ticker.get("timestamp") or time.time() * 1000),
            _num(bid) if bid is not None else None,
            _num(ask) if ask is not None else None,
        )

    async def _ensure_markets(self, symbols: Sequence[str]) -> None:
        missing = [s for s in symbols if s not in self._markets]
        if missing:
            await self.load_markets(missing)

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        """Subscribes now (the user stream is logged in in the background and every later call
        of this client waits for it), so an order placed after this call is seen. Every order
        stream of this client is fed by one reader (`OrderFeed`)."""
        return self._orders.subscribe(symbols)

    async def _next_orders(self) -> list[dict[str, Any]]:
        quiet = self.config.order_stale_after_s
        return await self._watch("orders", "watch_orders", stale_s=quiet, shared=False)

    async def _login(self) -> None:
        """The order stream's login step, the venue's way (`Venue.stream_login`)."""
        venue, client = self.venue, self.client
        if venue.uid_lookup is not None and not client.uid:
            method, key = venue.uid_lookup
            answer = await self._call("user id", method, after_subscriptions=False)
            uid = answer.get(key) if isinstance(answer, dict) else None
            if uid is None:
                raise StreamDisconnected(f"orders: the venue's {method} gave no {key!r}")
            client.uid = str(uid)
        if venue.stream_login is None:
            return
        if venue.stream_login == "params":
            cache = client.options.get(venue.login_cache.get(self.config.market, ""))
            if isinstance(cache, dict):  # asked again: a cached listen key may be dead
                cache["lastAuthenticatedTime"] = 0
            await self._watch("orders", "authenticate", {})
            return
        path = venue.private_ws_unified if client.options.get("uta") else venue.private_ws
        url: Any = client.urls["api"]["ws"]
        for key in path:
            url = url[key]
        url = client.implode_hostname(url)
        args = ({"url": url},) if venue.stream_login == "url_param" else (url,)
        await self._watch("orders", "authenticate", *args)

    def stream_klines(self, symbol: str, interval: str) -> AsyncIterator[Candle]:
        async def candles() -> AsyncIterator[Candle]:
            await self._ensure_markets([symbol])
            unified = self._market(symbol)["symbol"]
            while True:
                rows = await self._watch("klines", "watch_ohlcv", unified, interval)
                for r in rows[-1:]:
                    yield Candle(
                        int(r[0]), _num(r[1]), _num(r[2]), _num(r[3]), _num(r[4]), _num(r[5])
                    )

        return candles()

    def stream_account(self) -> AsyncIterator[AccountUpdate]:
        async def updates() -> AsyncIterator[AccountUpdate]:
            while True:
                balance = await self._watch(
                    "account", "watch_balance", stale_s=self.config.order_stale_after_s
                )
                yield AccountUpdate(
                    self._streamed_balances(balance),
                    self._streamed_positions(),
                    int(balance.get("timestamp") or 0),
                )

        return updates()

    @staticmethod
    def _streamed_balances(balance: dict[str, Any]) -> tuple[Balance, ...]:
        """A USD-M account update carries wallet balances only (ccxt: `total`, no `free`): free
        is then the total less what is in use."""
        free, used, total = (balance.get(k) or {} for k in ("free", "used", "total"))
        out = []
        for asset in {**free, **total}:
            locked = _num(used.get(asset))
            if free.get(asset) is None:
                out.append(Balance(asset, _num(total.get(asset)) - locked, locked))
            else:
                out.append(Balance(asset, _num(free[asset]), locked))
        return tuple(out)

    def _streamed_positions(self) -> tuple[Position, ...]:
        """The newest position of each symbol in ccxt's position cache, which binance USD-M
        fills from the same account update as the balances (empty where nothing fills it)."""
        cache = getattr(self.client, "positions", None)
        if isinstance(cache, dict):  # binance: one cache per account type
            cache = cache.get(self.config.market)
        newest: dict[str, Position] = {}
        for p in cache or ():
            position = self._position(p)
            if position is not None:
                newest[position.symbol] = position  # the cache holds the newest last
        return tuple(newest.values())

    async def close(self) -> None:
        await self._orders.close()  # readers of the order streams see them end
        await self.client.close()
