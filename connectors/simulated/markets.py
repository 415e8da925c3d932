"""The markets the simulated exchange lists, with realistic rules and starting prices.

Owns: the static market table (DESIGN 8). Must not: hold state.
"""

from __future__ import annotations

from decimal import Decimal as D

from mm.core.model import MarketRules, MarketType

# symbol: (base, tick, lot, min qty, min notional, starting price)
_TABLE = {
    "BTCUSDT": ("BTC", D("0.01"), D("0.00001"), D("0.00001"), D("5"), D("65000.00")),
    "ETHUSDT": ("ETH", D("0.01"), D("0.0001"), D("0.0001"), D("5"), D("3200.00")),
    "SOLUSDT": ("SOL", D("0.01"), D("0.001"), D("0.001"), D("5"), D("150.00")),
    "BNBUSDT": ("BNB", D("0.01"), D("0.001"), D("0.001"), D("5"), D("580.00")),
    "XRPUSDT": ("XRP", D("0.0001"), D("0.1"), D("0.1"), D("5"), D("0.5200")),
    "DOGEUSDT": ("DOGE", D("0.00001"), D("1"), D("1"), D("5"), D("0.12000")),
}
SYMBOLS = tuple(_TABLE)


def rules_for(symbol: str, market_type: MarketType) -> MarketRules | None:
    row = _TABLE.get(symbol)
    if row is None:
        return None
    base, tick, lot, min_qty, min_notional, _ = row
    return MarketRules(symbol, base, "USDT", market_type, tick, lot, min_qty, min_notional)


def start_price(symbol: str) -> D:
    return _TABLE[symbol][5]
