"""Per-venue differences as data: one row per venue, read by `CcxtExchange`.

Owns: what differs between binance, bitget, gate, okx and bybit for a grid market maker — the
ccxt class, market-type options, the client-order-id parameter and its format limits, how
post-only and reduce-only are asked for, how long a finished order can be looked up by client id,
how the account's position mode is read where ccxt cannot read it, which streams exist, batch
limits, and the venue's error messages that ccxt maps too coarsely for
money decisions. Must not: hold behaviour; a
venue quirk that needs code is a bug to fix here as data first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mm import errors


@dataclass(frozen=True)
class LookupWindow:
    """The venue finds a finished order by its client id for `seconds` after the order ended
    only; after that by its exchange id, or in the venue's list of finished orders (ccxt's
    `fetch_closed_orders`), paged by `page_param` ("page": pages counted from 1; "offset": rows
    skipped) and bounded by finish time with the raw `since_param` (unix seconds) where that list
    takes one."""

    seconds: float
    page_param: str
    since_param: str | None = None


@dataclass(frozen=True)
class PositionModeQuery:
    """How the account's perpetual position mode is read where ccxt has no `fetch_position_mode`:
    ccxt's implicit API `method` called with `params` (each value formatted with the ccxt market,
    so "{id}" is the venue's symbol and "{settleId}" its settle coin), the answer's record found
    at `path` (keys, or an index into a list), and its `field`, which the venue documents to hold
    one of `one_way` or one of `hedged`. `per_symbol`: the venue sets the mode per symbol, so
    each symbol is asked (else once per account)."""

    method: str
    params: dict[str, str]
    path: tuple[str | int, ...]
    field: str
    one_way: tuple[object, ...]
    hedged: tuple[object, ...]
    per_symbol: bool = False


@dataclass(frozen=True)
class Venue:
    ccxt_id: str
    # ccxt `options` for spot and for linear perpetuals (market loading, default type)
    spot_options: dict[str, object]
    linear_options: dict[str, object]
    client_id_param: str  # the create_order param carrying our client order id
    client_id_pattern: str  # what the venue accepts (checked before sending)
    client_id_prefix: str = ""  # the venue adds (or requires) it: "t-" on gate
    # create_order's `client_id_param` is handed the id without `client_id_prefix`: ccxt adds
    # the prefix (to an id not starting with its first letter) and checks the venue's length
    # limit on the id without it (gate: 28); handed the prefixed id, it counts the prefix and
    # refuses a valid 29-30 character one. (Gate's own `text` param would be sent verbatim.)
    ccxt_adds_prefix: bool = False
    # the cancel/fetch param naming an order by client id, when not `client_id_param`
    lookup_param: str | None = None
    fetch_params: dict[str, object] = field(default_factory=dict)  # extra params of fetch_order
    client_id_in_path: bool = False  # cancel/fetch name the order by client id in the URL path
    # per market ("spot", "linear"): the venue looks a finished order up by client id for a while
    # only (`LookupWindow`); a market not listed has no such limit
    lookup_window: dict[str, LookupWindow] = field(default_factory=dict)
    # cancel/fetch also hand ccxt the client id as their `id` argument: bitget's fetch_order
    # sends the client id param but names `id` in its OrderNotFound message, and None there
    # raises TypeError instead (an unknown order would read as an outage)
    lookup_names_id: bool = False
    post_only_param: dict[str, object] = field(default_factory=lambda: {"postOnly": True})
    reduce_only_param: dict[str, object] = field(default_factory=lambda: {"reduceOnly": True})
    # (raw order field, value) saying the venue cancelled a post-only order because it would
    # have crossed: venues that accept it first report it CANCELED, which it is not for us
    post_only_cancel: tuple[str, str] | None = None
    position_mode: str = "one-way"  # the grid assumes one-way (net) positions
    # how to read the perpetual account's mode where ccxt cannot (has['fetchPositionMode'])
    position_mode_query: PositionModeQuery | None = None
    streams: frozenset[str] = frozenset({"prices", "orders", "klines", "account"})
    # How the order stream logs in, done on its own before it subscribes so that every later
    # call of the client waits for it (an order placed after `stream_orders` is streamed).
    # ccxt's `authenticate` takes different arguments per venue:
    #   "params":    authenticate({})            binance (listen key / WS-API signature), okx
    #   "url_param": authenticate({"url": ws})   bitget
    #   "url":       authenticate(ws)            bybit
    #   None: no login step: gate signs each private subscription itself
    # where `ws` is the private socket: `private_ws`, a key path under ccxt's urls["api"]["ws"]
    # (`private_ws_unified` on a unified account, which ccxt marks with options["uta"]).
    stream_login: str | None = "params"
    # per market: the ccxt `options` entry caching the stream's login (binance USD-M: the
    # listen key, reused by ccxt until its refresh time, 20 min). Its `lastAuthenticatedTime` is
    # reset before each login so the venue is asked again: else a reconnect after the key died
    # (the API key revoked, the listen key expired) reuses it, is refused, and loops forever
    login_cache: dict[str, str] = field(default_factory=dict)
    private_ws: tuple[str, ...] = ()
    private_ws_unified: tuple[str, ...] = ()
    # extra params of the price stream's `watch_tickers` (sent along in the subscription)
    ticker_params: dict[str, object] = field(default_factory=dict)
    # the `fetch_my_trades` param naming one order, per market ("spot", "linear"); None: the
    # endpoint ccxt calls has no such filter, so a fee is learned from the market's recent trades
    trades_order_param: dict[str, str | None] = field(
        default_factory=lambda: {"spot": "orderId", "linear": "orderId"}
    )
    # (ccxt method, response field) giving the account's user id when the private streams need
    # it and ccxt does not look it up itself (gate's futures channels name the user)
    uid_lookup: tuple[str, str] | None = None
    batch_limit: int = 1  # orders per batch call (1: place one by one)
    # the raw field of a streamed order update naming the trade it reports (its fee is then
    # that trade's fee; the order's cumulative fee is the sum over its trades)
    ws_trade_id: str | None = None
    ws_trade_fee: str | None = None  # the raw field with that trade's own fee
    ws_trade_fee_asset: str | None = None  # the raw field naming the asset of that fee
    ws_trade_price: str | None = None  # the raw field with that trade's price
    # (substring of the venue's message or code, error) checked before ccxt's class: ccxt maps
    # these to a broad class (e.g. binance's duplicate id is just InvalidOrder)
    message_errors: tuple[tuple[str, type[errors.MMError]], ...] = ()

    def valid_client_id(self, client_id: str) -> bool:
        if re.fullmatch(self.client_id_pattern, self.wire_id(client_id)) is None:
            return False
        # ccxt would send an id that starts with the prefix's first letter without the prefix
        return not (
            self.ccxt_adds_prefix and self.create_id(client_id).startswith(self.client_id_prefix[0])
        )

    def create_id(self, client_id: str) -> str:
        """Our client id as create_order's param is handed it (see `ccxt_adds_prefix`); the
        venue stores `wire_id` either way."""
        wire = self.wire_id(client_id)
        return wire.removeprefix(self.client_id_prefix) if self.ccxt_adds_prefix else wire

    def wire_id(self, client_id: str) -> str:
        """Our client id as the venue sees it (gate: with its required `t-`)."""
        prefix = self.client_id_prefix
        return client_id if client_id.startswith(prefix) else prefix + client_id

    def our_id(self, wire_id: str) -> str:
        """The venue's echo of a client id, back to ours."""
        return wire_id.removeprefix(self.client_id_prefix) if self.client_id_prefix else wire_id

    def crossed_post_only(self, info: Mapping[str, object]) -> bool:
        """The venue's raw order says it cancelled a post-only order that would have crossed."""
        if self.post_only_cancel is None:
            return False
        key, value = self.post_only_cancel
        return str(info.get(key)) == value

    def lookup(self, client_id: str) -> tuple[str | None, dict[str, object]]:
        """(the id argument, params) of ccxt's cancel_order / fetch_order for a client id."""
        wire = self.wire_id(client_id)
        if self.client_id_in_path:
            return wire, {}
        params: dict[str, object] = {self.lookup_param or self.client_id_param: wire}
        return (wire if self.lookup_names_id else None), params


VENUES: dict[str, Venue] = {
    "binance": Venue(
        ccxt_id="binance",
        spot_options={
            "defaultType": "spot",
            "fetchCurrencies": False,  # signed sapi calls the market maker does not need
            "fetchMargins": False,
            "fetchMarkets": {"types": ["spot"]},
        },
        linear_options={
            "defaultType": "swap",
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["linear"]},
        },
        client_id_param="clientOrderId",  # sent as newClientOrderId
        client_id_pattern=r"[.A-Za-z0-9_:/-]{1,36}",
        # the full 24h ticker stream (`<symbol>@ticker`): ccxt's default `@miniTicker` carries
        # no best bid/ask
        ticker_params={"name": "ticker"},
        # POST /fapi/v1/listenKey returns the active key, extended, or a new one; a revoked API
        # key gets -2015 (spot logs in by signature on the WebSocket API each time)
        login_cache={"linear": "linear"},
        batch_limit=5,  # futures batchOrders; spot places one by one
        ws_trade_id="t",  # executionReport / ORDER_TRADE_UPDATE "t" (-1: no trade)
        ws_trade_fee="n",  # that trade's commission (ccxt's order "fee" is a running total)
        ws_trade_fee_asset="N",  # the commission asset
        ws_trade_price="L",  # the last filled price
        message_errors=(
            ("Duplicate order sent", errors.DuplicateOrder),
            ("ClientOrderId is duplicated", errors.DuplicateOrder),  # USD-M -4116
            ("could not be executed as maker", errors.PostOnlyRejected),  # USD-M -5022
            ("ReduceOnly Order is rejected", errors.ReduceOnlyRejected),  # -2022
            ("Margin is insufficient", errors.InsufficientFunds),  # -2019
            ('"code":-1007', errors.RequestTimeout),  # "execution status unknown"
            ("Send status unknown", errors.RequestTimeout),
            ("Unknown order sent", errors.OrderNotFound),
            ("Order does not exist", errors.OrderNotFound),
            ("Filter failure", errors.InvalidOrder),
            ('"code":-1022', errors.AuthenticationError),  # bad signature
            ('"code":-2015', errors.AuthenticationError),
            ('"code":-2014', errors.AuthenticationError),
            ('"code":-1021', errors.AuthenticationError),  # clock outside recvWindow
        ),
    ),
    "bitget": Venue(
        ccxt_id="bitget",
        spot_options={"defaultType": "spot"},
        linear_options={"defaultType": "swap", "defaultSubType": "linear"},
        client_id_param="clientOrderId",  # clientOid
        client_id_pattern=r"[A-Za-z0-9_#:.-]{1,50}",
        lookup_names_id=True,
        stream_login="url_param",
        private_ws=("private",),
        private_ws_unified=("utaPrivate",),
        batch_limit=50,
        # GET /api/v2/mix/account/account (Get Single Account): data.posMode, set per product
        # type (POST /api/v2/mix/account/set-position-mode), so asked once
        position_mode_query=PositionModeQuery(
            method="privateMixGetV2MixAccountAccount",
            params={
                "symbol": "{id}",
                "productType": "{settleId}-FUTURES",
                "marginCoin": "{settleId}",
            },
            path=("data",),
            field="posMode",
            one_way=("one_way_mode",),
            hedged=("hedge_mode",),
        ),
        message_errors=(
            ("Duplicate clientOid", errors.DuplicateOrder),
            ("clientOrderId duplicate", errors.DuplicateOrder),  # spot 43118
        ),
    ),
    "gate": Venue(
        ccxt_id="gate",
        spot_options={"defaultType": "spot"},
        linear_options={"defaultType": "swap", "defaultSettle": "usdt"},
        client_id_param="clientOrderId",  # sent as gate's order "text" (which starts "t-")
        client_id_pattern=r"t-[A-Za-z0-9_.-]{1,28}",
        client_id_prefix="t-",
        ccxt_adds_prefix=True,
        client_id_in_path=True,  # /orders/{order_id} accepts the text (t-...) as the id
        # ...but "when the order is finished, it can be checked within 1 hour [spot] / 60 seconds
        # [futures] after the end of the order. After that, only order ID is accepted" (API v4,
        # GET /spot/orders/{order_id}, GET /futures/{settle}/orders/{order_id}). Finished orders
        # are listed by GET /spot/orders?status=finished (page, limit; from/to by finish time)
        # and GET /futures/{settle}/orders?status=finished (offset, limit; no time range: ccxt's
        # time-range variant filters by creation time, which would drop an order that rested long)
        lookup_window={
            "spot": LookupWindow(3600, "page", since_param="from"),
            "linear": LookupWindow(60, "offset"),
        },
        post_only_param={"timeInForce": "PO"},
        post_only_cancel=("finish_as", "poc"),  # spot; futures refuse it (ORDER_POC_IMMEDIATE)
        stream_login=None,
        uid_lookup=("privateAccountGetDetail", "user_id"),  # GET /account/detail
        # spot my_trades takes `order_id`; ccxt reads futures trades from my_trades_timerange,
        # which takes a contract and a time range only
        trades_order_param={"spot": "order_id", "linear": None},
        batch_limit=10,
        # GET /futures/{settle}/accounts (Get futures account): in_dual_mode, per settle account
        position_mode_query=PositionModeQuery(
            method="privateFuturesGetSettleAccounts",
            params={"settle": "{settleId}"},
            path=(),
            field="in_dual_mode",
            one_way=(False,),
            hedged=(True,),
        ),
        message_errors=(("DUPLICATE", errors.DuplicateOrder),),
    ),
    "okx": Venue(
        ccxt_id="okx",
        spot_options={"defaultType": "spot"},
        linear_options={"defaultType": "swap"},
        client_id_param="clientOrderId",  # clOrdId
        client_id_pattern=r"[A-Za-z0-9]{1,32}",
        trades_order_param={"spot": "ordId", "linear": "ordId"},  # fills-history
        post_only_cancel=("cancelSource", "31"),  # "post-only order will take liquidity"
        batch_limit=20,
        message_errors=(
            ("Duplicated clOrdId", errors.DuplicateOrder),
            ('"sCode":"51016"', errors.DuplicateOrder),  # the code itself, never a substring
        ),
    ),
    "bybit": Venue(
        ccxt_id="bybit",
        spot_options={"defaultType": "spot"},
        linear_options={"defaultType": "swap", "defaultSubType": "linear"},
        client_id_param="clientOrderId",  # orderLinkId
        client_id_pattern=r"[A-Za-z0-9_-]{1,36}",
        lookup_param="orderLinkId",  # v5 cancel/query take it by its own name
        fetch_params={"acknowledged": True},  # ccxt: "I know fetch_order sees recent orders"
        post_only_cancel=("rejectReason", "EC_PostOnlyWillTakeLiquidity"),
        stream_login="url",
        private_ws=("private", "contract"),  # ccxt's choice for USDT linear and spot alike
        batch_limit=10,
        # GET /v5/position/list with a symbol answers its position(s) even when flat: one with
        # positionIdx 0 in one-way mode, two (1 buy side, 2 sell side) in hedge mode. The mode is
        # set per symbol (POST /v5/position/switch-mode: symbol > coin > default), so each is asked
        position_mode_query=PositionModeQuery(
            method="privateGetV5PositionList",
            params={"category": "linear", "symbol": "{id}"},
            path=("result", "list", 0),
            field="positionIdx",
            one_way=(0,),
            hedged=(1, 2),
            per_symbol=True,
        ),
        message_errors=(
            ("OrderLinkedID is duplicate", errors.DuplicateOrder),  # v5 110072
            ("Duplicate clientOrderId", errors.DuplicateOrder),  # spot 170141
        ),
    ),
}
