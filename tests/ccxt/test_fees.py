"""FeeBook (`connectors/ccxt/fees.py`): a trade's fee in quote, whatever asset it was charged in,
and the streamed path (binance's `n`/`N`/`L`) through `CcxtExchange._report`."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal as D
from typing import Any

import pytest

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange
from connectors.ccxt.fees import FeeBook, in_quote
from mm.core.model import MarketRules, MarketType

RULES = MarketRules("BTCUSDT", "BTC", "USDT", MarketType.SPOT, D("0.01"), D("0.00001"))
LOOPBACK = {"http_base": "http://127.0.0.1:9", "ws_base": "ws://127.0.0.1:9", "loopback_only": True}


@pytest.mark.parametrize(
    ("cost", "currency", "want"),
    [
        ("0.024", "USDT", D("0.024")),  # in quote: as is
        ("0.048", None, D("0.048")),  # unnamed (a linear settlement fee): as is
        ("0.0000004", "BTC", D("0.024")),  # in base: at the trade's price, exactly
        ("-0.0000001", "BTC", D("-0.006")),  # a rebate keeps its sign
        ("0.0001", "BNB", None),  # another asset: no price for it
    ],
)
def test_a_fee_in_quote(cost: str, currency: str | None, want: D | None) -> None:
    assert in_quote(D(cost), currency, D("60000"), RULES) == want


def test_an_order_fee_sums_its_trades_once_each() -> None:
    book = FeeBook()
    book.note("c1", "t1", D("0.0000004"), "BTC", D("60000"), RULES)
    book.note("c1", "t1", D("0.0000004"), "BTC", D("60000"), RULES)  # streamed, then fetched
    book.note("c1", "t2", D("0.036"), "USDT", D("60000"), RULES)
    assert book.total("c1") == D("0.06")
    assert book.total("c2") == 0


def test_a_fee_in_another_asset_is_kept_apart_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = FeeBook()
    with caplog.at_level(logging.WARNING, logger="connectors.ccxt.fees"):
        assert book.note("c1", "t1", D("0.0001"), "BNB", D("60000"), RULES) is None
        book.note("c1", "t1", D("0.0001"), "BNB", D("60000"), RULES)
        book.note("c1", "t2", D("0.0002"), "BNB", D("60000"), RULES)
    assert book.total("c1") == 0
    assert book.elsewhere() == {"BNB": D("0.0003")}
    assert len([r for r in caplog.records if "BNB" in r.getMessage()]) == 1


def _streamed(trade_id: int, fee: str, asset: str, price: str) -> dict[str, Any]:
    """A ccxt order from binance's user stream: its raw update names the trade it reports."""
    return {
        "id": "42",
        "clientOrderId": "g1abtcuobi0001",
        "symbol": "BTC/USDT",
        "side": "buy",
        "price": 60000.0,
        "amount": 0.001,
        "filled": 0.0004,
        "status": "open",
        "info": {"t": trade_id, "n": fee, "N": asset, "L": price},
    }


def test_a_streamed_fee_in_base_is_reported_in_quote() -> None:
    async def scenario() -> None:
        exchange = CcxtExchange(CcxtConfig(venue="binance", **LOOPBACK))
        try:
            exchange._rules_of["BTCUSDT"], exchange._sizes["BTCUSDT"] = RULES, D(1)
            exchange._report(_streamed(7, "0.00000040", "BTC", "60000.00"), "BTCUSDT")
            exchange._report(_streamed(8, "0.0001", "BNB", "60000.00"), "BTCUSDT")
            report = exchange._report(_streamed(9, "0.012", "USDT", "60000.00"), "BTCUSDT")
        finally:
            await exchange.close()
        assert report.fee == D("0.036")
        assert exchange.fees_elsewhere() == {"BNB": D("0.0001")}

    asyncio.run(scenario())
