"""The HTTP endpoints served by a real uvicorn on 127.0.0.1: /health, /status, /metrics."""

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal as D

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import PriceTick
from mm.engine.clock import SystemClock
from mm.engine.connector_service import ConnectorService
from mm.engine.router import Delivery
from mm.engine.symbol_engine import EngineConfig
from mm.engine.symbol_service import SymbolService
from mm.observability.latency import BUCKETS_MS, LatencyStats
from mm.observability.metrics import registry
from mm.server.app import build_app
from mm.server.health import HealthManager
from mm.store.journal import Journal
from tests.helpers import eventually, grid, run

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url):
    try:
        with _NO_PROXY.open(url, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["content-type"], e.read().decode()


async def get(url):
    """(status, content type, body text) of a GET, from a thread (the server runs in this loop)."""
    return await asyncio.to_thread(_get, url)


async def get_json(url):
    status, content_type, body = await get(url)
    assert content_type == "application/json"
    return status, json.loads(body)


@contextlib.asynccontextmanager
async def serving(app):
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), what="uvicorn started")
    if task.done():
        task.result()  # the reason it could not start
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def serve(health, status=lambda: None, metrics=None):
    return build_app(health, status, metrics or registry(status))


def components(body):
    return {name: (c["ok"], c["detail"]) for name, c in body["components"].items()}


# -- /health --------------------------------------------------------------------------------
def test_health_is_503_before_the_first_check():
    async def scenario():
        health = HealthManager()
        health.register("connector", ok_check)
        async with serving(serve(health)) as url:
            return await get_json(url + "/health")

    status, body = run(scenario())
    assert status == 503 and body["ok"] is False
    assert components(body) == {"startup": (False, "not checked yet")}


async def ok_check():
    return True, "ok"


async def failing_check():
    raise RuntimeError("boom")


async def stuck_check():
    await asyncio.Event().wait()


async def cluster_up():
    return {"connector": (True, "ok"), "mm": (True, "up")}  # "mm" itself keeps its name


async def cluster_check():
    return {"connector": (True, "ok"), "symbol:BTCUSDT": (False, "halted: breaker")}


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        pytest.param(
            {"journal": ok_check, "exchange": failing_check},
            {"journal": (True, "ok"), "exchange": (False, "RuntimeError: boom")},
            id="a-check-raises",
        ),
        pytest.param(
            {"journal": ok_check, "exchange": stuck_check},
            {"journal": (True, "ok"), "exchange": (False, "no answer within 0.05s")},
            id="a-check-times-out",
        ),
        pytest.param(
            {"journal": ok_check, "mm": cluster_check},
            {
                "journal": (True, "ok"),
                "mm.connector": (True, "ok"),
                "mm.symbol:BTCUSDT": (False, "halted: breaker"),
            },
            id="one-sub-component-fails",
        ),
    ],
)
def test_health_is_503_when_any_component_fails(checks, expected):
    async def scenario():
        health = HealthManager(timeout_s=0.05)
        for name, check in checks.items():
            health.register(name, check)
        await health.run_once()
        async with serving(serve(health)) as url:
            return await get_json(url + "/health")

    status, body = run(scenario())
    assert status == 503 and body["ok"] is False
    assert components(body) == expected


def test_health_is_200_when_every_component_passes_and_follows_the_latest_round():
    async def scenario():
        health = HealthManager()
        health.register("journal", ok_check)
        health.register("mm", cluster_up)
        await health.run_once()
        async with serving(serve(health)) as url:
            passing = await get_json(url + "/health")
            health.register("exchange", failing_check)
            await health.run_once()
            failing = await get_json(url + "/health")
            health.unregister("exchange")
            await health.run_once()
            again = await get_json(url + "/health")
        return passing, failing, again

    passing, failing, again = run(scenario())
    assert passing[0] == 200 and passing[1]["ok"] is True
    expected = {"journal": (True, "ok"), "mm.connector": (True, "ok"), "mm": (True, "up")}
    assert components(passing[1]) == expected
    assert passing[1]["checked_ms"] > 0
    assert failing[0] == 503 and components(failing[1])["exchange"][0] is False
    assert again[0] == 200


def test_health_without_any_check_is_not_healthy():
    async def scenario():
        health = HealthManager()
        await health.run_once()
        async with serving(serve(health)) as url:
            return await get_json(url + "/health")

    assert run(scenario())[0] == 503


# -- /status ---------------------------------------------------------------------------------
def test_status_is_503_until_there_is_a_snapshot_then_the_snapshot_plus_health():
    latest = {}

    async def scenario():
        health = HealthManager()
        health.register("journal", ok_check)
        await health.run_once()
        async with serving(serve(health, lambda: latest.get("now"))) as url:
            before = await get_json(url + "/status")
            latest["now"] = SNAPSHOT
            after = await get_json(url + "/status")
        return before, after

    before, after = run(scenario())
    assert before[0] == 503 and "error" in before[1]
    status, body = after
    assert status == 200
    assert body["health"]["ok"] is True and components(body["health"]) == {"journal": (True, "ok")}
    expected = json.loads(json.dumps(SNAPSHOT))  # tuples become lists on the way
    assert {k: v for k, v in body.items() if k != "health"} == expected


# -- /metrics --------------------------------------------------------------------------------
def latency(*samples_ms, recent=10_000):
    stats = LatencyStats(recent=recent)
    for ms in samples_ms:
        stats.observe(ms)
    return stats


TICK_TO_ORDER = latency(0.3, 0.5, 3.0, 40.0, 7000.0)
ROUND_TRIP = latency(12.0, 30.0)

SNAPSHOT = {  # the shape the orchestrator's status() assembles
    "symbols": {
        "BTCUSDT": {  # SymbolService.status()
            "symbol": "BTCUSDT",
            "state": "QUOTING",
            "halt_reason": "",
            "risk_halted": True,
            "anchor": "10000.00",
            "last_price": "9900.00",
            "inventory_qty": "0.02",
            "open_orders": 4,
            "realized_pnl": "1.25",
            "unrealized_pnl": "-0.50",
            "fees": "0.4",
            "fills": 5,
            "round_trips": 2,
            "paused": False,
            "risk_reasons": ["breaker", "exposure"],
            "last_tick_age_s": 0.25,
            "orders_placed": 12,
            "orders_rejected": 1,
            "fill_volume_quote": "396.50",
            "deliveries": 40,
            "resyncs": 3,
            "tick_to_order_ms": TICK_TO_ORDER.to_dict(),
            "live_orders": [],
            "registry": "active",
        },
        "ETHUSDT": {"state": "UNREACHABLE", "error": "actor died", "registry": "active"},
    },
    "risk": {  # mm.actors.risk.state_view
        "halted": True,
        "reasons": ["breaker", "exposure"],
        "breaker_reason": "manual: test",
        "exposure_quote": "1234.5",
        "total_pnl": "0.75",
        "peak_pnl": "2",
        "losing_streak": 1,
        "latency_ms": 21.0,
    },
    "connector": {  # ConnectorService.stats()
        "ticks_in": 100,
        "updates_in": 7,
        "unrouted": 0,
        "ticks_delivered": 60,
        "ticks_conflated": 40,
        "ticks_held": 30,
        "symbols": {},
        "exchange": "simulated",
        "reconnects": 2,
        "subscriptions": 3,
        "last_message_age_s": 0.5,
        "calls": {"place_order": 12},
        "errors": {},
        "budget_waits": 0,
        "round_trip_ms": ROUND_TRIP.to_dict(),
    },
}


def scrape(snapshot):
    async def scenario():
        health = HealthManager()
        async with serving(serve(health, lambda: snapshot)) as url:
            return await get(url + "/metrics")

    status, content_type, text = run(scenario())
    assert status == 200 and content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_carry_per_symbol_counters_and_gauges_from_the_snapshot():
    samples = scrape(SNAPSHOT)
    btc = SNAPSHOT["symbols"]["BTCUSDT"]
    assert value(samples, "mm_orders_placed_total", symbol="BTCUSDT") == btc["orders_placed"]
    assert value(samples, "mm_orders_rejected_total", symbol="BTCUSDT") == 1
    assert value(samples, "mm_fills_total", symbol="BTCUSDT") == 5
    assert value(samples, "mm_fill_volume_quote_total", symbol="BTCUSDT") == 396.5
    assert value(samples, "mm_round_trips_total", symbol="BTCUSDT") == 2
    assert value(samples, "mm_resyncs_total", symbol="BTCUSDT") == 3
    assert value(samples, "mm_realized_pnl_quote", symbol="BTCUSDT") == 1.25
    assert value(samples, "mm_unrealized_pnl_quote", symbol="BTCUSDT") == -0.5
    assert value(samples, "mm_position_qty", symbol="BTCUSDT") == 0.02
    assert value(samples, "mm_open_orders", symbol="BTCUSDT") == 4
    assert value(samples, "mm_last_tick_age_seconds", symbol="BTCUSDT") == 0.25
    assert value(samples, "mm_symbol_state", symbol="BTCUSDT", state="QUOTING") == 1
    assert value(samples, "mm_symbol_state", symbol="ETHUSDT", state="UNREACHABLE") == 1
    eth = [key for key in samples if ("symbol", "ETHUSDT") in key[1]]
    assert [name for name, _ in eth] == ["mm_symbol_state"]  # an unreachable symbol has no numbers


def test_metrics_turn_latency_stats_into_histograms_in_seconds():
    samples = scrape(SNAPSHOT)
    buckets = {
        float(dict(labels)["le"]): v
        for (name, labels), v in samples.items()
        if name == "mm_tick_to_order_seconds_bucket"
    }
    assert sorted(buckets) == [ms / 1000 for ms in BUCKETS_MS] + [float("inf")]
    assert buckets[0.0005] == 2  # 0.3 and 0.5 ms (a bound includes samples equal to it)
    assert buckets[0.001] == 2 and buckets[0.005] == 3 and buckets[0.05] == 4
    assert buckets[5.0] == 4 and buckets[float("inf")] == 5
    assert value(samples, "mm_tick_to_order_seconds_count", symbol="BTCUSDT") == 5
    assert value(samples, "mm_tick_to_order_seconds_sum", symbol="BTCUSDT") == pytest.approx(
        7043.8 / 1000
    )
    assert value(samples, "mm_exchange_round_trip_seconds_count") == 2
    assert value(samples, "mm_exchange_round_trip_seconds_bucket", le="0.025") == 1
    assert value(samples, "mm_exchange_round_trip_seconds_sum") == pytest.approx(0.042)


def test_metrics_carry_risk_and_connector_gauges():
    samples = scrape(SNAPSHOT)
    assert value(samples, "mm_risk_halted") == 1
    assert value(samples, "mm_risk_exposure_quote") == 1234.5
    assert value(samples, "mm_risk_reason", reason="breaker") == 1
    assert value(samples, "mm_risk_reason", reason="exposure") == 1
    assert value(samples, "mm_ticks_received_total") == 100
    assert value(samples, "mm_ticks_delivered_total") == 60
    assert value(samples, "mm_ticks_conflated_total") == 40
    assert value(samples, "mm_ticks_held_total") == 30
    assert value(samples, "mm_stream_reconnects_total") == 2
    assert value(samples, "mm_stream_last_message_age_seconds") == 0.5


def test_metrics_without_a_snapshot_or_with_dead_parts_still_parse():
    assert scrape(None) == {}
    broken = {
        "symbols": {"BTCUSDT": {"state": "UNREACHABLE", "error": "x"}},
        "risk": {"error": "risk actor unreachable"},
        "connector": {"error": "connector unreachable"},
    }
    samples = scrape(broken)
    assert samples == {("mm_symbol_state", (("state", "UNREACHABLE"), ("symbol", "BTCUSDT"))): 1.0}


def test_status_and_metrics_read_what_the_real_services_report(tmp_path):
    """The keys /metrics reads are the ones SymbolService and ConnectorService write."""

    async def scenario():
        clock = SystemClock()
        sim = SimulatedExchange(SimConfig(start_prices={"BTCUSDT": D("10000")}), clock)
        journal = Journal(tmp_path / "journal.db")
        service = SymbolService(EngineConfig("BTCUSDT", grid()), sim, journal, clock)
        connector = ConnectorService(sim)
        await service.start()
        await connector.call("fetch_balances")
        tick = PriceTick("BTCUSDT", D("10000"), clock.now_ms())
        await service.deliver(Delivery("BTCUSDT", 1, (), tick, False, time.time_ns()))
        snapshot = {"symbols": {"BTCUSDT": service.status()}, "connector": connector.stats()}
        health = HealthManager()

        async def symbol_health():
            return service.health()

        health.register("symbol", symbol_health)
        await health.run_once()
        async with serving(serve(health, lambda: snapshot)) as url:
            status = await get_json(url + "/status")
            metrics = await get(url + "/metrics")
        journal.close()
        return status, metrics

    (status, body), (_, _, text) = run(scenario())
    assert status == 200 and body["symbols"]["BTCUSDT"]["orders_placed"] == 3
    assert body["health"]["ok"] is True
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert value(samples, "mm_orders_placed_total", symbol="BTCUSDT") == 3
    assert value(samples, "mm_open_orders", symbol="BTCUSDT") == 3
    assert value(samples, "mm_tick_to_order_seconds_count", symbol="BTCUSDT") == 3
    assert value(samples, "mm_exchange_round_trip_seconds_count") == 1
    assert value(samples, "mm_symbol_state", symbol="BTCUSDT", state="QUOTING") == 1


# -- LatencyStats ----------------------------------------------------------------------------
def test_latency_samples_fall_in_the_first_bucket_whose_bound_they_do_not_exceed():
    stats = latency(0.5, 0.50001, 5000.0, 5000.1, 0.0)
    data = stats.to_dict()
    cumulative = dict(data["buckets"])
    assert cumulative[0.5] == 2  # 0.0 and exactly 0.5
    assert cumulative[1.0] == 3
    assert cumulative[5000.0] == 4
    assert cumulative["+Inf"] == 5 == data["count"]
    assert stats.counts[0] == 2 and stats.counts[1] == 1 and stats.counts[-1] == 1
    assert data["sum_ms"] == pytest.approx(10001.10001)


def test_latency_percentiles_come_from_the_recent_samples():
    assert LatencyStats().percentile(0.5) is None and LatencyStats().to_dict()["p50_ms"] is None
    stats = latency(5.0, 1.0, 4.0, 2.0, 3.0)
    assert stats.median() == 3.0
    assert stats.percentile(0.0) == 1.0 and stats.percentile(1.0) == 5.0
    assert stats.to_dict()["p99_ms"] == 5.0
    bounded = latency(100.0, 100.0, 1.0, 2.0, 3.0, recent=3)
    assert bounded.count == 5  # every sample counts in the histogram ...
    assert bounded.median() == 2.0 and bounded.percentile(1.0) == 3.0  # ... the recent ones here
