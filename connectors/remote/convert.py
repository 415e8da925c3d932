"""Domain values <-> protobuf messages of `opensqt.market_maker.v1`.

Owns: the wire format of every value (decimal strings, ms timestamps, prefixed enums) and the
validation of what arrives from the wire. Must not: do IO. A value that cannot be read raises
`InvalidArgument` naming the field, never a protobuf or decimal exception.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from connectors.remote.generated import events_pb2 as ev
from connectors.remote.generated import models_pb2 as pb
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
from mm.errors import InvalidArgument

SIDE_TO_PB = {Side.BUY: pb.ORDER_SIDE_BUY, Side.SELL: pb.ORDER_SIDE_SELL}
SIDE_FROM_PB = {v: k for k, v in SIDE_TO_PB.items()}
STATUS_TO_PB = {
    OrderStatus.OPEN: pb.ORDER_STATUS_OPEN,
    OrderStatus.PARTIALLY_FILLED: pb.ORDER_STATUS_PARTIALLY_FILLED,
    OrderStatus.FILLED: pb.ORDER_STATUS_FILLED,
    OrderStatus.CANCELED: pb.ORDER_STATUS_CANCELED,
    OrderStatus.EXPIRED: pb.ORDER_STATUS_EXPIRED,
    OrderStatus.REJECTED: pb.ORDER_STATUS_REJECTED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
MARKET_TO_PB = {MarketType.SPOT: pb.MARKET_TYPE_SPOT, MarketType.LINEAR: pb.MARKET_TYPE_LINEAR}
MARKET_FROM_PB = {v: k for k, v in MARKET_TO_PB.items()}
MAX_ID_LEN = 64
MAX_DIGITS = 30
DECIMAL = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}(\.[0-9]{{1,{MAX_DIGITS}}})?")


# -- reading the wire ----------------------------------------------------------------------------
def dec(text: str, field: str, *, positive: bool = False, optional: bool = False) -> Decimal:
    """A decimal string from the wire ("-12.5", "0.001"); empty is zero only when `optional`.

    Stricter than `Decimal()`: no exponent, underscore, whitespace, NaN or infinity, and at most
    `MAX_DIGITS` digits on either side of the point."""
    if text == "" and optional:
        return ZERO
    if not DECIMAL.fullmatch(text):
        raise InvalidArgument(f"{field}: {text[:40]!r} is not a plain decimal number like 12.5")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise InvalidArgument(f"{field}: {text[:40]!r} is not a decimal number") from None
    if positive and value <= 0:
        raise InvalidArgument(f"{field}: must be positive, got {text}")
    return value


def opt_dec(text: str, field: str) -> Decimal | None:
    return None if text == "" else dec(text, field)


def text(value: str, field: str, *, max_len: int = MAX_ID_LEN) -> str:
    if not value:
        raise InvalidArgument(f"{field}: required")
    if len(value) > max_len or not value.isprintable() or value.strip() != value:
        raise InvalidArgument(f"{field}: {value[:80]!r} is not a valid identifier")
    return value


def side(value: int, field: str = "side") -> Side:
    try:
        return SIDE_FROM_PB[value]
    except KeyError:
        raise InvalidArgument(f"{field}: must be ORDER_SIDE_BUY or ORDER_SIDE_SELL") from None


def order_request(m: pb.OrderRequest) -> OrderRequest:
    return OrderRequest(
        symbol=text(m.symbol, "order.symbol"),
        client_id=text(m.client_order_id, "order.client_order_id"),
        side=side(m.side, "order.side"),
        price=dec(m.price, "order.price", positive=True),
        qty=dec(m.quantity, "order.quantity", positive=True),
        post_only=m.post_only,
        reduce_only=m.reduce_only,
    )


def order(m: pb.Order) -> OrderReport:
    try:
        status = STATUS_FROM_PB[m.status]
    except KeyError:
        raise InvalidArgument(f"order.status: unknown value {m.status}") from None
    return OrderReport(
        symbol=m.symbol,
        client_id=m.client_order_id,
        side=side(m.side, "order.side"),
        price=dec(m.price, "order.price"),
        qty=dec(m.quantity, "order.quantity"),
        status=status,
        filled_qty=dec(m.filled_quantity, "order.filled_quantity", optional=True),
        avg_price=dec(m.average_price, "order.average_price", optional=True),
        fee=dec(m.fee, "order.fee", optional=True),
        exchange_id=m.exchange_order_id,
        ts_ms=m.update_time_ms,
        reason=m.reason,
        post_only=m.post_only,
        reduce_only=m.reduce_only,
    )


def rules(m: pb.SymbolInfo) -> MarketRules:
    try:
        market_type = MARKET_FROM_PB[m.market_type]
    except KeyError:
        raise InvalidArgument(f"{m.symbol}: unknown market type {m.market_type}") from None
    return MarketRules(
        symbol=m.symbol,
        base=m.base_asset,
        quote=m.quote_asset,
        market_type=market_type,
        tick_size=dec(m.tick_size, "tick_size", positive=True),
        lot_size=dec(m.lot_size, "lot_size", positive=True),
        min_qty=dec(m.min_quantity, "min_quantity", optional=True),
        min_notional=dec(m.min_notional, "min_notional", optional=True),
    )


def fill(m: pb.Fill) -> Fill:
    return Fill(
        symbol=m.symbol,
        trade_id=m.trade_id,
        client_id=m.client_order_id,
        exchange_id=m.exchange_order_id,
        side=side(m.side, "fill.side"),
        price=dec(m.price, "fill.price"),
        qty=dec(m.quantity, "fill.quantity"),
        fee=dec(m.fee, "fill.fee", optional=True),
        ts_ms=m.time_ms,
        is_maker=m.is_maker,
    )


def candle(m: pb.Candle) -> Candle:
    return Candle(
        m.open_time_ms,
        dec(m.open, "open"),
        dec(m.high, "high"),
        dec(m.low, "low"),
        dec(m.close, "close"),
        dec(m.volume, "volume", optional=True),
    )


def balance(m: pb.Balance) -> Balance:
    return Balance(m.asset, dec(m.free, "free"), dec(m.locked, "locked", optional=True))


def position(m: pb.Position) -> Position:
    return Position(
        m.symbol, dec(m.quantity, "quantity"), dec(m.entry_price, "entry_price", optional=True)
    )


def price_event(m: ev.PriceEvent) -> PriceTick:
    return PriceTick(
        m.symbol,
        dec(m.price, "price"),
        m.time_ms,
        opt_dec(m.bid, "bid"),
        opt_dec(m.ask, "ask"),
    )


def account_event(m: ev.AccountEvent) -> AccountUpdate:
    return AccountUpdate(
        tuple(balance(b) for b in m.balances),
        tuple(position(p) for p in m.positions),
        m.time_ms,
    )


# -- writing the wire ----------------------------------------------------------------------------
def s(value: Decimal | None) -> str:
    """Plain decimal notation ("0.00001", not "1E-5") so every language parses it."""
    return "" if value is None else format(value, "f")


def order_request_pb(r: OrderRequest) -> pb.OrderRequest:
    return pb.OrderRequest(
        symbol=r.symbol,
        client_order_id=r.client_id,
        side=SIDE_TO_PB[r.side],
        price=s(r.price),
        quantity=s(r.qty),
        post_only=r.post_only,
        reduce_only=r.reduce_only,
    )


def order_pb(r: OrderReport) -> pb.Order:
    return pb.Order(
        symbol=r.symbol,
        client_order_id=r.client_id,
        exchange_order_id=r.exchange_id,
        side=SIDE_TO_PB[r.side],
        price=s(r.price),
        quantity=s(r.qty),
        status=_status_pb(r),
        filled_quantity=s(r.filled_qty),
        average_price=s(r.avg_price),
        fee=s(r.fee),
        update_time_ms=r.ts_ms,
        reason=r.reason,
        post_only=r.post_only,
        reduce_only=r.reduce_only,
    )


def _status_pb(r: OrderReport) -> int:
    try:
        return STATUS_TO_PB[r.status]
    except KeyError:  # INTENT/UNKNOWN are ours, never the venue's: refuse to send a guess
        raise ValueError(f"{r.client_id}: status {r.status.value} has no wire form") from None


def rules_pb(r: MarketRules) -> pb.SymbolInfo:
    return pb.SymbolInfo(
        symbol=r.symbol,
        base_asset=r.base,
        quote_asset=r.quote,
        market_type=MARKET_TO_PB[r.market_type],
        tick_size=s(r.tick_size),
        lot_size=s(r.lot_size),
        min_quantity=s(r.min_qty),
        min_notional=s(r.min_notional),
    )


def fill_pb(f: Fill) -> pb.Fill:
    return pb.Fill(
        symbol=f.symbol,
        trade_id=f.trade_id,
        client_order_id=f.client_id,
        exchange_order_id=f.exchange_id,
        side=SIDE_TO_PB[f.side],
        price=s(f.price),
        quantity=s(f.qty),
        fee=s(f.fee),
        time_ms=f.ts_ms,
        is_maker=f.is_maker,
    )


def candle_pb(c: Candle) -> pb.Candle:
    return pb.Candle(
        open_time_ms=c.ts_ms,
        open=s(c.open),
        high=s(c.high),
        low=s(c.low),
        close=s(c.close),
        volume=s(c.volume),
    )


def balance_pb(b: Balance) -> pb.Balance:
    return pb.Balance(asset=b.asset, free=s(b.free), locked=s(b.locked))


def position_pb(p: Position) -> pb.Position:
    return pb.Position(symbol=p.symbol, quantity=s(p.qty), entry_price=s(p.entry_price))


def price_event_pb(t: PriceTick) -> ev.PriceEvent:
    return ev.PriceEvent(
        symbol=t.symbol, price=s(t.price), bid=s(t.bid), ask=s(t.ask), time_ms=t.ts_ms
    )


def account_event_pb(u: AccountUpdate) -> ev.AccountEvent:
    return ev.AccountEvent(
        balances=[balance_pb(b) for b in u.balances],
        positions=[position_pb(p) for p in u.positions],
        time_ms=u.ts_ms,
    )
