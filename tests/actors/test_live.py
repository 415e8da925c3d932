"""Two symbols trading live under real Ray on the simulated venue, seen through HTTP.

Checks DESIGN 6/7 end to end: both symbols quote, fills produce closes, `/status` and `/metrics`
(served by the real `mm run` process code on a real port) report them, shutdown cancels every
order, and the DESIGN 4 invariants hold between each journal and the venue afterwards.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mm.actors.client import Cluster
from mm.live import LiveProcess
from tests.actors.conftest import invariants, live_roles, venue_at_rest
from tests.helpers import eventually

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def serve_and_read(mm) -> tuple[dict, dict, str, int]:
    process = LiveProcess(mm.settings, Cluster(mm.handle))
    task = asyncio.get_running_loop().create_task(process.run(quiet=True))
    await eventually(lambda: process.port > 0, timeout_s=60, what="the HTTP server")
    # until the poller and the health loop have had a full round
    await eventually(
        lambda: process.latest is not None and process.health.snapshot.ok,
        timeout_s=60,
        what="a healthy snapshot",
    )
    code, body = await asyncio.to_thread(fetch, process.port, "/health")
    assert code == 200
    health = json.loads(body)
    _, status_body = await asyncio.to_thread(fetch, process.port, "/status")
    _, metrics = await asyncio.to_thread(fetch, process.port, "/metrics")
    process.stop.set()
    await task
    return health, json.loads(status_body), metrics, process.port


def samples(metrics: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_symbols_quote_fill_close_and_report_over_http(market_maker, tmp_path):
    mm = market_maker(SYMBOLS, http={"port": 0})
    for symbol in SYMBOLS:
        status = mm.wait_symbol(
            symbol,
            lambda s: s["state"] == "QUOTING" and s["fills"] > 0 and "CLOSE" in live_roles(s),
            timeout_s=90,
        )
        assert status["orders_placed"] >= status["open_orders"] > 0
        assert status["tick_to_order_ms"]["count"] > 0

    health, status, metrics, port = asyncio.run(serve_and_read(mm))

    assert port > 0 and health["ok"] is True
    assert {f"market_maker.symbol:{s}" for s in SYMBOLS} <= set(health["components"])
    values = samples(metrics)
    for symbol in SYMBOLS:
        s = status["symbols"][symbol]
        assert s["fills"] > 0 and s["state"] in ("QUOTING", "DRAINING")
        label = (("symbol", symbol),)
        assert values[("mm_fills_total", label)] >= 1
        assert values[("mm_orders_placed_total", label)] >= s["open_orders"]
        assert values[("mm_tick_to_order_seconds_count", label)] >= 1
        assert ("mm_symbol_state", (("state", s["state"]), ("symbol", symbol))) in values
    assert status["risk"]["halted"] is False
    assert values[("mm_risk_halted", ())] == 0
    assert status["connector"]["ticks_in"] > 0

    # LiveProcess.run shut the market maker down: orders cancelled, journals agree with the venue
    for symbol in SYMBOLS:
        numbers = invariants(tmp_path, symbol)
        assert numbers["fills"] > 0
    venue = venue_at_rest(tmp_path)
    assert [o for s in SYMBOLS for o in venue.orders(s) if not o.status.is_terminal] == []
