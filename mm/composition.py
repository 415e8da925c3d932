"""Factories the composition root hands to actors: which concrete classes a process builds.

Owns: turning `MarketMakerSettings` into the exchange the connector actor holds. It is passed
by reference (a module-level function) from `mm.cli` to the actors, so `mm/actors` never imports
a connector. Must not: hold trading logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange
from connectors.remote.client import RemoteConfig, RemoteExchange
from connectors.remote.server import ServerConfig
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.faults import FaultConfig
from mm.config import SimulatedConfig
from mm.engine.clock import SystemClock
from mm.ports import Exchange
from mm.settings import (
    CcxtVenue,
    ExchangeConnectorSettings,
    ExchangeSettings,
    MarketMakerSettings,
    RemoteVenue,
)

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
    """The exchange behind the connector actor. Call inside a running event loop."""
    return make_venue(settings.exchange, settings.data_dir)


def make_venue(exchange: ExchangeSettings, data_dir: Path) -> Exchange:
    """The exchange `exchange.kind` names. Call inside a running event loop (live feeds start)."""
    if exchange.kind == "remote":
        return RemoteExchange(remote_config(exchange.remote))
    if exchange.kind == "ccxt":
        return CcxtExchange(ccxt_config(exchange.ccxt))
    sim = exchange.simulated
    persist = data_dir / VENUE_FILE if sim.persist else None
    if persist is not None:
        persist.parent.mkdir(parents=True, exist_ok=True)
    venue = SimulatedExchange(
        sim_config(
            sim,
            volatility=sim.volatility,
            seed=sim.seed,
            tick_interval_ms=sim.tick_interval_ms,
            spread_feeds=sim.spread_feeds,
            persist_path=persist,
            persist_every_ms=sim.persist_every_ms,
        ),
        SystemClock(),
    )
    venue.start()
    return venue


def ccxt_config(venue: CcxtVenue) -> CcxtConfig:
    creds = venue.credentials
    secret = lambda s: s.get_secret_value() if s is not None else ""  # noqa: E731
    return CcxtConfig(
        venue=venue.venue,
        market=venue.market,
        api_key=secret(creds.api_key) if creds else "",
        api_secret=secret(creds.api_secret) if creds else "",
        passphrase=secret(creds.passphrase) if creds else "",
        http_base=venue.http_base,
        ws_base=venue.ws_base,
        stale_after_s=venue.stale_after_s,
        order_stale_after_s=venue.order_stale_after_s,
        timeout_ms=venue.timeout_ms,
    )


def remote_config(remote: RemoteVenue) -> RemoteConfig:
    return RemoteConfig(
        address=remote.address,
        token=remote.token.get_secret_value() if remote.token else None,
        tls=remote.tls,
        ca_file=remote.ca_file,
        call_timeout_s=remote.call_timeout_s,
    )


def server_config(settings: ExchangeConnectorSettings) -> ServerConfig:
    """`mm connector`'s gRPC server settings (the exchange comes from `make_venue`)."""
    return ServerConfig(
        host=settings.host,
        port=settings.port,
        token=settings.token.get_secret_value() if settings.token else None,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        preload_symbols=tuple(settings.preload_symbols),
        stream_buffer=settings.stream_buffer,
        health_every_s=settings.health_every_s,
        grace_s=settings.grace_s,
    )
