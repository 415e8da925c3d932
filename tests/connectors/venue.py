"""Shared setup for the simulated-venue tests: a venue at BTC 10000.00 and small helpers."""

from decimal import Decimal as D

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderRequest, OrderStatus, Side
from tests.helpers import run

T0 = 1_700_000_100_000  # on a 5-minute boundary
MINUTE = 60_000
SPOT = "BTCUSDT"
PERP = "BTCUSDT-PERP"
MAKER = D("0.001")
TAKER = D("0.002")
USDT0 = D(100_000)
BTC0 = D(1)
OPEN, PARTIAL, FILLED = OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED
CANCELED, EXPIRED = OrderStatus.CANCELED, OrderStatus.EXPIRED
BUY, SELL = Side.BUY, Side.SELL


def venue(clock, **overrides):
    """A venue at BTC 10000.00 with 100k USDT and 1 BTC, 0.1% maker and 0.2% taker fees."""
    values = dict(
        balances={"USDT": USDT0, "BTC": BTC0},
        start_prices={"BTCUSDT": D("10000")},
        maker_fee_rate=MAKER,
        taker_fee_rate=TAKER,
    )
    values.update(overrides)
    return SimulatedExchange(SimConfig(**values), clock)


def request(cid, side, price, qty, symbol=SPOT, **flags):
    return OrderRequest(symbol, cid, side, D(price), D(qty), **flags)


def place(ex, cid, side, price, qty, symbol=SPOT, **flags):
    return run(ex.place_order(request(cid, side, price, qty, symbol, **flags)))


def wallet(ex):
    """{asset: (free, locked)} as the venue reports it."""
    return {a: (b.free, b.locked) for a, b in run(ex.fetch_balances()).items()}


def fills(ex, symbol=SPOT, since_ms=0):
    return run(ex.fetch_fills(symbol, since_ms))


def position(ex, symbol=PERP):
    pos = run(ex.fetch_positions([symbol]))[symbol]
    return pos.qty, pos.entry_price


def lookup(ex, cid, symbol=SPOT):
    return run(ex.fetch_order(symbol, cid))


def open_ids(ex, symbol=SPOT):
    return [r.client_id for r in run(ex.fetch_open_orders(symbol))]
