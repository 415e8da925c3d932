"""Prometheus metrics of the whole market maker, built from the latest status snapshot.

Owns: the metric names, help texts and labels served on `/metrics`. The numbers live where they
happen (symbol actors, the connector, the risk actor) and reach this process in the status
snapshot; a custom collector turns the newest snapshot into metric families at scrape time, so
counters stay monotonic as long as the actors do. Labels are bounded: symbol, state, reason.
Must not: call anything remote (it reads what the status poller already fetched).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

_SYMBOL_COUNTERS = (  # status key, metric name, help
    ("orders_placed", "mm_orders_placed", "Orders sent to the exchange"),
    ("orders_rejected", "mm_orders_rejected", "Orders the exchange refused"),
    ("fills", "mm_fills", "Fills applied to the position"),
    ("fill_volume_quote", "mm_fill_volume_quote", "Filled notional, in quote"),
    ("round_trips", "mm_round_trips", "Closed round trips"),
    ("resyncs", "mm_resyncs", "Reconciles asked for by the router (missed updates)"),
)
_SYMBOL_GAUGES = (
    ("realized_pnl", "mm_realized_pnl_quote", "Realized PnL net of fees, in quote"),
    ("unrealized_pnl", "mm_unrealized_pnl_quote", "Inventory marked to the last price"),
    ("inventory_qty", "mm_position_qty", "Inventory held by the grid, in base"),
    ("open_orders", "mm_open_orders", "Live orders of ours"),
    ("last_tick_age_s", "mm_last_tick_age_seconds", "Seconds since the last tick was applied"),
)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: HistogramMetricFamily, values: list[str], data: Any) -> None:
    """Add a `LatencyStats.to_dict()` (milliseconds) as seconds."""
    if not isinstance(data, dict) or not data.get("count"):
        return
    buckets = [
        (bound if isinstance(bound, str) else repr(bound / 1000), count)
        for bound, count in data["buckets"]
    ]
    family.add_metric(values, buckets, data["sum_ms"] / 1000)


class StatusCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any] | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        status = self._snapshot() or {}
        yield from self._symbols(status.get("symbols") or {})
        yield from self._risk(status.get("risk") or {})
        yield from self._connector(status.get("connector") or {})

    def _symbols(self, symbols: dict[str, Any]) -> Iterator[Metric]:
        for key, name, doc in _SYMBOL_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["symbol"])
            for symbol, s in symbols.items():
                if (value := _num(s.get(key))) is not None:
                    family.add_metric([symbol], value)
            yield family
        for key, name, doc in _SYMBOL_GAUGES:
            family = GaugeMetricFamily(name, doc, labels=["symbol"])
            for symbol, s in symbols.items():
                if (value := _num(s.get(key))) is not None:
                    family.add_metric([symbol], value)
            yield family
        state = GaugeMetricFamily(
            "mm_symbol_state", "1 for the symbol's state", labels=["symbol", "state"]
        )
        latency = _histogram(
            "mm_tick_to_order_seconds", "Tick at the connector -> order call", ["symbol"]
        )
        for symbol, s in symbols.items():
            state.add_metric([symbol, str(s.get("state", "UNKNOWN"))], 1)
            _add_histogram(latency, [symbol], s.get("tick_to_order_ms"))
        yield state
        yield latency

    def _risk(self, risk: dict[str, Any]) -> Iterator[Metric]:
        halted = GaugeMetricFamily("mm_risk_halted", "1 while new openings are blocked")
        exposure = GaugeMetricFamily("mm_risk_exposure_quote", "Aggregate |inventory| notional")
        reasons = GaugeMetricFamily("mm_risk_reason", "1 per active risk reason", labels=["reason"])
        if risk and "halted" in risk:
            halted.add_metric([], float(bool(risk["halted"])))
            exposure.add_metric([], _num(risk.get("exposure_quote")) or 0.0)
            for reason in risk.get("reasons", []):
                reasons.add_metric([str(reason)], 1)
        yield from (halted, exposure, reasons)

    def _connector(self, c: dict[str, Any]) -> Iterator[Metric]:
        pairs = (
            ("ticks_in", "mm_ticks_received", "Ticks received from the exchange"),
            ("ticks_delivered", "mm_ticks_delivered", "Ticks delivered to symbol actors"),
            ("ticks_conflated", "mm_ticks_conflated", "Ticks replaced by a newer one"),
            ("ticks_held", "mm_ticks_held", "Ticks that did not wake their symbol (quiet)"),
            ("reconnects", "mm_stream_reconnects", "Stream reconnects"),
        )
        for key, name, doc in pairs:
            family = CounterMetricFamily(name, doc)
            if (value := _num(c.get(key))) is not None:
                family.add_metric([], value)
            yield family
        age = GaugeMetricFamily("mm_stream_last_message_age_seconds", "Since the last message")
        if (value := _num(c.get("last_message_age_s"))) is not None:
            age.add_metric([], value)
        yield age
        round_trip = _histogram("mm_exchange_round_trip_seconds", "Exchange REST round trip", [])
        _add_histogram(round_trip, [], c.get("round_trip_ms"))
        yield round_trip


def registry(snapshot: Callable[[], dict[str, Any] | None]) -> CollectorRegistry:
    """A registry holding only the market maker's metrics (no process collectors)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatusCollector(snapshot))
    return reg
