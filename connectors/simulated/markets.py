"""The markets the simulated exchange lists, with realistic rules and starting prices.

Owns: the static market table (DESIGN 8): 26 USDT spot markets (each also listed as a `-PERP`
linear perpetual by the exchange) with Binance-like tick size, lot size (min qty = lot size),
min notional 5 and a plausible starting price; a 50 USDT order is valid on every one of them.
New markets are appended, never inserted: a market's feed seed is its index in the table.
Must not: hold state.
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
    # Appended later; never reorder: a market's feed seed is its index in this table.
    "ADAUSDT": ("ADA", D("0.0001"), D("0.1"), D("0.1"), D("5"), D("0.4500")),
    "AVAXUSDT": ("AVAX", D("0.01"), D("0.01"), D("0.01"), D("5"), D("35.00")),
    "DOTUSDT": ("DOT", D("0.001"), D("0.01"), D("0.01"), D("5"), D("7.000")),
    "LINKUSDT": ("LINK", D("0.01"), D("0.01"), D("0.01"), D("5"), D("14.50")),
    "LTCUSDT": ("LTC", D("0.01"), D("0.001"), D("0.001"), D("5"), D("80.00")),
    "TRXUSDT": ("TRX", D("0.0001"), D("0.1"), D("0.1"), D("5"), D("0.1200")),
    "ATOMUSDT": ("ATOM", D("0.001"), D("0.01"), D("0.01"), D("5"), D("8.000")),
    "NEARUSDT": ("NEAR", D("0.001"), D("0.1"), D("0.1"), D("5"), D("5.000")),
    "APTUSDT": ("APT", D("0.01"), D("0.01"), D("0.01"), D("5"), D("8.50")),
    "ARBUSDT": ("ARB", D("0.0001"), D("0.1"), D("0.1"), D("5"), D("0.9000")),
    "OPUSDT": ("OP", D("0.001"), D("0.01"), D("0.01"), D("5"), D("2.000")),
    "FILUSDT": ("FIL", D("0.001"), D("0.01"), D("0.01"), D("5"), D("5.000")),
    "ETCUSDT": ("ETC", D("0.01"), D("0.01"), D("0.01"), D("5"), D("25.00")),
    "BCHUSDT": ("BCH", D("0.1"), D("0.001"), D("0.001"), D("5"), D("380.0")),
    "UNIUSDT": ("UNI", D("0.001"), D("0.01"), D("0.01"), D("5"), D("9.000")),
    "SUIUSDT": ("SUI", D("0.0001"), D("0.1"), D("0.1"), D("5"), D("1.0000")),
    "TONUSDT": ("TON", D("0.001"), D("0.01"), D("0.01"), D("5"), D("6.000")),
    "AAVEUSDT": ("AAVE", D("0.01"), D("0.001"), D("0.001"), D("5"), D("95.00")),
    "INJUSDT": ("INJ", D("0.01"), D("0.01"), D("0.01"), D("5"), D("25.00")),
    "SHIBUSDT": ("SHIB", D("0.00000001"), D("1"), D("1"), D("5"), D("0.00002000")),
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
