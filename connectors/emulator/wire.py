"""Binance's wire shapes: error codes and bodies, order/trade/market JSON, stream events.

Owns: how a simulated order, trade, market or refusal is written in Binance's spot and USD-M
dialects (field names, string numbers, statuses, error codes). Must not: serve anything or keep
state; `binance.py` is the server.
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse

from mm.core.model import Fill, MarketRules, OrderReport, OrderStatus, Position, Side
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

RECV_WINDOW_MS = 5_000
# A Binance client id is unique among *open* orders only: a finished order's id may be used
# again. The simulated venue keeps ids unique forever, so the emulator names the n-th order of
# a reused id `<id>~<n>` there ("~" is outside Binance's id alphabet) and writes it back bare.
REUSED = "~"
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


def from_mm(error: MMError, family: str = "spot") -> BinanceError:
    """The venue's refusal in Binance's words (codes from Binance's error documentation)."""
    if family == FUTURES:
        futures = futures_error(error)
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


def futures_error(error: MMError) -> BinanceError | None:
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


def wire(symbol: str) -> str:
    """The symbol as Binance writes it: the perpetual `BTCUSDT-PERP` is `BTCUSDT` on /fapi."""
    return symbol.removesuffix(PERP)


def s(value: Decimal) -> str:
    return format(value, "f")


def decimal(params: dict[str, str], key: str) -> Decimal:
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
def cumulative(trades: list[Fill], upto: Fill) -> Decimal:
    total = Decimal(0)
    for t in trades:
        total += t.qty
        if t is upto:
            break
    return total


def binance_id(client_id: str) -> str:
    """The simulated venue's client id as Binance writes it (without a reuse suffix)."""
    return client_id.split(REUSED, 1)[0]


def execution(
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
        "c": binance_id(report.client_id),
        "S": report.side.value,
        "o": "LIMIT_MAKER" if report.post_only else "LIMIT",
        "f": "GTC",
        "q": s(report.qty),
        "p": s(report.price),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": binance_id(report.client_id) if kind == "CANCELED" else "",
        "x": kind,
        "X": status,
        "r": "NONE",
        "i": int(report.exchange_id),
        "l": s(fill.qty) if fill else "0",
        "z": s(filled),
        "L": s(fill.price) if fill else "0",
        "n": s(fill.fee) if fill else "0",
        "N": rules.quote if fill else None,
        "T": fill.ts_ms if fill else report.ts_ms,
        "t": int(fill.trade_id) if fill else -1,
        "I": 0,
        "w": status in ("NEW", "PARTIALLY_FILLED"),
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": report.ts_ms,
        "Z": s(cost),
        "Y": s(fill.price * fill.qty) if fill else "0",
        "Q": "0",
        "W": report.ts_ms,
        "V": "NONE",
    }


def futures_update(execution: dict[str, Any], report: OrderReport) -> dict[str, Any]:
    """A spot executionReport rewritten as USD-M's ORDER_TRADE_UPDATE."""
    e = execution
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": e["E"],
        "T": e["T"],
        "o": {
            "s": wire(e["s"]),
            "c": e["c"],
            "S": e["S"],
            "o": "LIMIT",
            "f": "GTX" if e["o"] == "LIMIT_MAKER" else "GTC",
            "q": e["q"],
            "p": e["p"],
            "ap": s(report.avg_price),
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


def order_json(report: OrderReport, family: str = SPOT) -> dict[str, Any]:
    cost = report.avg_price * report.filled_qty
    common = {
        "symbol": wire(report.symbol),
        "orderId": int(report.exchange_id),
        "clientOrderId": binance_id(report.client_id),
        "price": s(report.price),
        "origQty": s(report.qty),
        "executedQty": s(report.filled_qty),
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
            "avgPrice": s(report.avg_price),
            "cumQty": s(report.filled_qty),
            "cumQuote": s(cost),
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
        "cummulativeQuoteQty": s(cost),
        "timeInForce": "GTC",
        "type": "LIMIT_MAKER" if report.post_only else "LIMIT",
        "icebergQty": "0",
        "workingTime": report.ts_ms,
        "isWorking": report.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
        "origQuoteOrderQty": "0",
    }


def trade_json(fill: Fill, rules: MarketRules, family: str = SPOT) -> dict[str, Any]:
    common = {
        "symbol": wire(fill.symbol),
        "id": int(fill.trade_id),
        "orderId": int(fill.exchange_id),
        "price": s(fill.price),
        "qty": s(fill.qty),
        "quoteQty": s(fill.price * fill.qty),
        "commission": s(fill.fee),
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


def symbol_info(r: MarketRules) -> dict[str, Any]:
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
                "minPrice": s(r.tick_size),
                "maxPrice": "10000000",
                "tickSize": s(r.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": s(r.min_qty or r.lot_size),
                "maxQty": "9000000",
                "stepSize": s(r.lot_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": s(r.min_notional),
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


def futures_info(r: MarketRules) -> dict[str, Any]:
    return {
        "symbol": wire(r.symbol),
        "pair": wire(r.symbol),
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
                "minPrice": s(r.tick_size),
                "maxPrice": "10000000",
                "tickSize": s(r.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": s(r.min_qty or r.lot_size),
                "maxQty": "9000000",
                "stepSize": s(r.lot_size),
            },
            {"filterType": "MIN_NOTIONAL", "notional": s(r.min_notional)},
        ],
        "orderTypes": ["LIMIT"],
        "timeInForce": ["GTC", "GTX"],
    }


def position_json(p: Position, now: int, mark: Decimal | None = None) -> dict[str, Any]:
    mark = p.entry_price if mark is None else mark
    return {
        "symbol": wire(p.symbol),
        "positionSide": "BOTH",
        "positionAmt": s(p.qty),
        "entryPrice": s(p.entry_price),
        "breakEvenPrice": s(p.entry_price),
        "markPrice": s(mark),
        "unRealizedProfit": s((mark - p.entry_price) * p.qty),
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": s(mark * p.qty),
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


def symbol_list(params: dict[str, str]) -> set[str] | None:
    if "symbol" in params:
        return {params["symbol"]}
    if "symbols" in params:
        with contextlib.suppress(ValueError):
            return set(json.loads(params["symbols"]))
    return None
