"""Factories the composition root hands to actors: which concrete classes a process builds.

Owns: turning `MarketMakerSettings` into the exchange the connector actor holds. It is passed
by reference (a module-level function) from `mm.cli` to the actors, so `mm/actors` never imports
a connector. Must not: hold trading logic.
"""

from __future__ import annotations

from typing import Any

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.faults import FaultConfig
from mm.config import SimulatedConfig
from mm.engine.clock import SystemClock
from mm.ports import Exchange
from mm.settings import MarketMakerSettings

VENUE_FILE = "venue.json"


def sim_config(venue: SimulatedConfig, **extra: Any) -> SimConfig:
    """The simulated venue's runtime config from its validated settings (plus `extra`)."""
    return SimConfig(
        balances=dict(venue.balances),
        maker_fee_rate=venue.maker_fee_rate,
        taker_fee_rate=venue.taker_fee_rate,
        leverage=venue.leverage,
        partial_fill_ratio=venue.partial_fill_ratio,
        consistency_window_ms=venue.consistency_window_ms,
        faults=FaultConfig(**venue.faults.model_dump()),
        **extra,
    )


def make_exchange(settings: MarketMakerSettings) -> Exchange:
    """The exchange behind the connector. Call inside a running event loop (live feeds start)."""
    sim = settings.exchange.simulated
    persist = settings.data_dir / VENUE_FILE if sim.persist else None
    if persist is not None:
        persist.parent.mkdir(parents=True, exist_ok=True)
    venue = SimulatedExchange(
        sim_config(
            sim,
            volatility=sim.volatility,
            seed=sim.seed,
            tick_interval_ms=sim.tick_interval_ms,
            persist_path=persist,
            persist_every_ms=sim.persist_every_ms,
        ),
        SystemClock(),
    )
    venue.start()
    return venue
