"""The global risk actor under real Ray: exposure cap, anomaly basket, manual breaker.

Each rule must reach every symbol: openings stop (and resting ones are cancelled) while the
closing orders of held inventory keep working, and trading resumes when the rule clears.
"""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest
import ray

from mm.actors import options
from mm.actors.calls import get
from mm.core import ids
from mm.core.model import Candle, Role
from mm.store.journal import Journal
from tests.actors.conftest import live_roles

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def venue_roles(mm, symbol: str) -> set[Role]:
    return {ids.parse(o.client_id).role for o in mm.connector("fetch_open_orders", symbol)}


def test_manual_breaker_cancels_openings_everywhere_and_reset_resumes(market_maker, tmp_path):
    mm = market_maker(SYMBOLS)
    for symbol in SYMBOLS:
        mm.wait_symbol(symbol, lambda s: s["state"] == "QUOTING" and "OPEN" in live_roles(s))

    tripped = get(mm.handle.breaker.remote("trip", "test"))
    assert tripped["halted"] and tripped["reasons"] == ["breaker"]
    assert tripped["breaker_reason"] == "manual: test"
    for symbol in SYMBOLS:
        status = mm.wait_symbol(symbol, lambda s: "OPEN" not in live_roles(s), timeout_s=20)
        assert status["risk_halted"] is True and status["risk_reasons"] == ["breaker"]
        assert Role.OPEN not in venue_roles(mm, symbol)  # cancelled on the venue too
    # a symbol actor restarted while tripped opens nothing: it learns the risk state first
    before = mm.symbol_status("BTCUSDT")
    killed_ms = time.time_ns() // 1_000_000
    ray.kill(mm.symbol("BTCUSDT"), no_restart=False)
    mm.wait_symbol("BTCUSDT", lambda s: s["pid"] != before["pid"] and s["deliveries"] > 20)
    journal = Journal(tmp_path / "journal" / "BTCUSDT.db")
    opened = [
        o for o in journal.orders("BTCUSDT") if o.role is Role.OPEN and o.created_ms >= killed_ms
    ]
    assert opened == []
    # a restarted risk actor keeps the breaker tripped (it is durable)
    ray.kill(mm.actor(options.RISK), no_restart=False)
    mm.wait(lambda: _risk_state(mm) is not None, what="the risk actor to restart")
    assert _risk_state(mm)["halted"] is True

    reset = get(mm.handle.breaker.remote("reset"))
    assert reset["halted"] is False
    for symbol in SYMBOLS:
        mm.wait_symbol(symbol, lambda s: not s["risk_halted"] and "OPEN" in live_roles(s))


def _risk_state(mm):
    try:
        return get(mm.actor(options.RISK).state.remote(), timeout_s=5)
    except Exception:
        return None


def test_exposure_cap_blocks_new_openings(market_maker):
    # 50 quote per level: the cap is reached after a few buys fill
    mm = market_maker(["BTCUSDT"], risk={"max_exposure_quote": "120", "report_every_s": 0.2})
    mm.wait_symbol("BTCUSDT", lambda s: "exposure" in s["risk_reasons"], timeout_s=120)
    risk = get(mm.actor(options.RISK).state.remote())
    assert D(risk["exposure_quote"]) >= D(120) and "exposure" in risk["reasons"]
    # the symbol shares the connector's node: its reports went through the connector's relay
    relay = get(mm.actor(options.CONNECTOR).stats.remote())["risk_reports"]
    assert relay["relayed"] >= 1 and 1 <= relay["calls"] <= relay["relayed"]

    # closes keep working while blocked, so the price may walk up and sell the inventory (which
    # lifts the cap); judge one snapshot taken while the symbol is blocked and still holds it
    def blocked_holding(s):
        held = D(s["inventory_qty"]) > 0
        return held and "exposure" in s["risk_reasons"] and "OPEN" not in live_roles(s)

    status = mm.wait_symbol("BTCUSDT", blocked_holding, timeout_s=20)
    assert set(live_roles(status)) == {"CLOSE"}  # openings cancelled, closes keep working


def candles(closes: list[str], volumes: list[str]) -> list[Candle]:
    return [
        Candle(60_000 * i, D(c), D(c), D(c), D(c), D(v))
        for i, (c, v) in enumerate(zip(closes, volumes, strict=True))
    ]


def test_anomaly_basket_trips_and_recovers(market_maker):
    anomaly = {
        "basket": SYMBOLS,
        "window": 3,
        "volume_multiple": 3,
        "mode": "all",
        "poll_every_s": 3600,
    }
    mm = market_maker(SYMBOLS, risk={"anomaly": anomaly})
    for symbol in SYMBOLS:
        mm.wait_symbol(symbol, lambda s: s["state"] == "QUOTING" and "OPEN" in live_roles(s))
    risk = mm.actor(options.RISK)
    crash = candles(["100", "100", "100", "90"], ["10", "10", "10", "50"])  # below MA, 5x volume
    calm = candles(["100", "100", "100", "101"], ["10", "10", "10", "10"])

    state = get(risk.observe_candles.remote("BTCUSDT", crash))
    assert not state.halted  # "all": one symbol of the basket is not enough
    state = get(risk.observe_candles.remote("ETHUSDT", crash))
    assert state.halted and state.reasons == ("anomaly",)
    for symbol in SYMBOLS:
        mm.wait_symbol(symbol, lambda s: "OPEN" not in live_roles(s), timeout_s=20)

    get(risk.observe_candles.remote("BTCUSDT", calm))
    state = get(risk.observe_candles.remote("ETHUSDT", calm))
    assert not state.halted
    for symbol in SYMBOLS:
        mm.wait_symbol(symbol, lambda s: not s["risk_halted"] and "OPEN" in live_roles(s))
