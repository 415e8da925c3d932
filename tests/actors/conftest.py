"""Fixtures for the Ray tests: a real local Ray per module, one market maker per test.

Each test gets its own namespace and data directory, so a test never sees another's actors,
registry, journals or venue. The market maker is the real thing: orchestrator, connector, risk
and symbol actors over a simulated venue that persists to `<data_dir>/venue.json`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import ray

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.actors import client, options
from mm.actors.calls import get
from mm.composition import make_exchange
from mm.engine.clock import VirtualClock
from mm.errors import ExchangeUnavailable
from mm.settings import MarketMakerSettings
from mm.store.journal import Journal
from tests.helpers import POLL_S, check_invariants

FAST_VENUE = {
    "tick_interval_ms": 20,
    "volatility": 0.001,
    "persist_every_ms": 1000,
    "balances": {"USDT": "1000000"},
}
GRIDS = {
    "BTCUSDT": {"interval": "40"},
    "ETHUSDT": {"interval": "2"},
    "SOLUSDT": {"interval": "0.1"},
}


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tests")
    yield
    ray.shutdown()


def make_settings(data_dir: Path, symbols: list[str], **overrides: Any) -> MarketMakerSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "exchange": {"simulated": dict(FAST_VENUE)},
        "grid_defaults": {
            "strategy_id": "t1",
            "buy_levels": 4,
            "sell_levels": 4,
            "level_notional": "50",
            "max_open_orders": 12,
        },
        "symbols": {s: GRIDS[s.removesuffix("-PERP")] for s in symbols},
        "ray": {"namespace": f"t-{uuid.uuid4().hex[:12]}", "dashboard": False},
        "engine": {"reconcile_every_s": 5},
        "connector": {"rate_limit_per_s": 1000, "rate_limit_burst": 1000},
        "risk": {"report_every_s": 0.2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return MarketMakerSettings(**values)


class MarketMaker:
    """A launched market maker and the calls tests make to it."""

    def __init__(self, settings: MarketMakerSettings) -> None:
        self.settings = settings
        self.ns = settings.ray.namespace
        self.handle = client.launch(settings, make_exchange)

    def actor(self, name: str) -> Any:
        return ray.get_actor(name, namespace=self.ns)

    def symbol(self, symbol: str) -> Any:
        return self.actor(options.symbol_actor(symbol))

    def status(self) -> dict[str, Any]:
        return get(self.handle.status.remote(), timeout_s=30)

    def symbol_status(self, symbol: str) -> dict[str, Any]:
        return get(self.symbol(symbol).status.remote(), timeout_s=30)

    def connector(self, method: str, *args: Any) -> Any:
        return get(self.actor(options.CONNECTOR).call.remote(method, *args), timeout_s=30)

    def wait(self, condition: Callable[[], bool], timeout_s: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            time.sleep(max(POLL_S, 0.05))

    def wait_symbol(
        self, symbol: str, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 60
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            nonlocal seen
            try:
                seen = self.symbol_status(symbol)
                return condition(seen)
            except (KeyError, ValueError, ExchangeUnavailable):  # not (fully) up yet
                return False

        self.wait(check, timeout_s, f"{symbol} to satisfy the condition (last: {_brief(seen)})")
        return seen

    def shutdown(self, cancel_orders: bool = True) -> dict[str, Any]:
        drained = get(self.handle.shutdown.remote(cancel_orders), timeout_s=120)
        ray.kill(self.handle, no_restart=True)
        return drained


def _brief(status: dict[str, Any]) -> dict[str, Any]:
    keys = ("state", "open_orders", "fills", "round_trips", "inventory_qty", "deliveries", "pid")
    return {k: status.get(k) for k in keys}


@pytest.fixture
def market_maker(ray_local: None, tmp_path: Path) -> Iterator[Callable[..., MarketMaker]]:
    launched: list[MarketMaker] = []

    def launch(symbols: list[str], **overrides: Any) -> MarketMaker:
        mm = MarketMaker(make_settings(tmp_path, symbols, **overrides))
        launched.append(mm)
        return mm

    yield launch
    for mm in launched:
        with contextlib.suppress(Exception):  # already shut down by the test
            mm.shutdown()


def venue_at_rest(data_dir: Path) -> SimulatedExchange:
    """The persisted venue, loaded without running its feed (for invariant checks)."""
    return SimulatedExchange(
        SimConfig(balances={"USDT": D(0)}, persist_path=data_dir / "venue.json"), VirtualClock(0)
    )


def invariants(
    data_dir: Path, symbol: str, journal_dir: Path | None = None, **kwargs: Any
) -> dict[str, Any]:
    journal = Journal((journal_dir or data_dir / "journal") / f"{symbol}.db")
    return check_invariants(journal, venue_at_rest(data_dir), symbol, "t1", **kwargs)


def live_roles(status: dict[str, Any]) -> list[str]:
    return [o["role"] for o in status["live_orders"]]
