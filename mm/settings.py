"""Configuration of the live market maker (`mm run` and the commands that talk to it).

Owns: the strict models of `configs/market_maker.yaml` — where data lives, which exchange, the
initial symbols and their grids, risk limits, Ray placement, HTTP, shutdown behaviour — and the
per-symbol grid merge (`grid_for`). Loading, `${VAR}` interpolation, `MM_*` overrides and error
wording are shared with `mm.config`. Must not: build runtime objects (the CLI composes).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from mm.config import (
    EnvFirstSettings,
    ExchangeCredentials,
    GridConfig,
    SimulatedConfig,
    Strict,
    explain,
)
from mm.core.risk import AnomalyRule, RiskLimits
from mm.errors import ConfigError
from mm.netaddr import is_loopback

SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}(-PERP)?$"
PASSPHRASE_VENUES = ("okx", "bitget")  # venues whose API keys come with a passphrase


class SimulatedVenue(SimulatedConfig):
    tick_interval_ms: int = Field(250, ge=1, le=60_000, description="Live feed: ms per price.")
    spread_feeds: bool = Field(
        True,
        description="Markets move at their own offsets within an interval (False: all at once).",
    )
    volatility: float = Field(0.0005, ge=0, le=0.5, description="Std of log return per candle.")
    seed: int = Field(0, description="Seed of the price walks.")
    persist: bool = Field(
        True, description="Keep the venue's orders/balances in <data_dir>/venue.json."
    )
    persist_every_ms: int = Field(
        1_000,
        ge=0,
        description="Save at most this often (0: on every change); always on shutdown.",
    )


class RemoteVenue(Strict):
    """An `mm connector` (gRPC exchange_connector) that holds the exchange connection."""

    address: str = Field(
        "127.0.0.1:50051",
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="host:port of the connector.",
    )
    token: SecretStr | None = Field(
        None, description="Bearer token the connector requires (write ${MM_CONNECTOR_TOKEN})."
    )
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="PEM of the CA that signed the connector's certificate (TLS)."
    )
    call_timeout_s: float = Field(10.0, gt=0, le=300, description="Deadline of each unary call.")

    @model_validator(mode="after")
    def _tls_files(self) -> RemoteVenue:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false")
        return self


class CcxtVenue(Strict):
    """A real venue through ccxt (or anything speaking its dialect, like `mm emulator`)."""

    venue: Literal["binance", "bitget", "gate", "okx", "bybit"] = Field(
        "binance", description="Which venue (its quirks are in connectors/ccxt/venues.py)."
    )
    market: Literal["spot", "linear"] = Field(
        "spot", description="spot, or linear (USDT perpetuals: symbols like BTCUSDT-PERP)."
    )
    credentials: ExchangeCredentials | None = Field(
        None, description="api_key / api_secret / passphrase; write them as ${ENV_VARS}."
    )
    http_base: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+$",
        description="Send every REST call here, keeping its path (e.g. http://127.0.0.1:8090).",
    )
    ws_base: str | None = Field(
        None,
        pattern=r"^wss?://[^\s/]+$",
        description="Send every WebSocket here, keeping its path (e.g. ws://127.0.0.1:8090).",
    )
    stale_after_s: float = Field(30.0, gt=0, description="No tick this long: price stream dead.")
    order_stale_after_s: float = Field(
        120.0, gt=0, description="No order/account update this long: resubscribe and gap-fill."
    )
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="REST request timeout.")

    @field_validator("credentials")
    @classmethod
    def _passphrase(
        cls, credentials: ExchangeCredentials | None, info: ValidationInfo
    ) -> ExchangeCredentials | None:
        """okx and bitget sign every private call with the API passphrase too: without one the
        first order would fail, so it fails here. (The key path is sensitive: no value shown.)"""
        venue = info.data.get("venue")
        if credentials is None or venue not in PASSPHRASE_VENUES:
            return credentials  # no credentials at all: ExchangeSettings says so for kind ccxt
        if credentials.passphrase is None or not credentials.passphrase.get_secret_value():
            raise ValueError(
                f"ccxt.credentials.passphrase is required for {venue} (its API passphrase; "
                f"write it as ${{ENV_VAR}})"
            )
        return credentials


class ExchangeSettings(Strict):
    kind: Literal["simulated", "remote", "ccxt"] = Field(
        "simulated",
        description="simulated: the embedded venue; remote: an `mm connector` over gRPC; "
        "ccxt: a real venue (or `mm emulator`).",
    )
    simulated: SimulatedVenue = Field(SimulatedVenue(), description="The simulated venue.")
    remote: RemoteVenue = Field(RemoteVenue(), description="The exchange_connector (remote).")
    ccxt: CcxtVenue = Field(CcxtVenue(), description="A venue through ccxt (kind: ccxt).")

    @model_validator(mode="after")
    def _credentials(self) -> ExchangeSettings:
        if self.kind == "ccxt" and self.ccxt.credentials is None:
            raise ValueError("kind: ccxt needs ccxt.credentials (api_key and api_secret)")
        return self


class AnomalySettings(Strict):
    basket: list[str] = Field(min_length=1, description="Symbols watched together.")
    window: int = Field(20, ge=2, le=1000, description="Candles in the moving averages.")
    volume_multiple: Decimal = Field(Decimal(3), gt=0, description="Volume above k x MA.")
    mode: Literal["all", "any"] = Field("all", description="all / any basket symbol anomalous.")
    recovery_share: Decimal = Field(
        Decimal(1), gt=0, le=1, description="Share of the basket back above MA to clear."
    )
    interval: str = Field("1m", pattern=r"^[0-9]+[mhd]$", description="Candle interval.")
    poll_every_s: float = Field(30.0, gt=0, description="How often candles are fetched.")


class RiskSettings(Strict):
    max_exposure_quote: Decimal | None = Field(
        None, gt=0, description="Cap on |inventory| x price summed over all symbols."
    )
    exposure_resume_ratio: Decimal = Field(
        Decimal("0.9"), gt=0, le=1, description="The cap lifts below cap x ratio."
    )
    max_drawdown_quote: Decimal | None = Field(
        None, gt=0, description="Breaker trips when total PnL falls this far below its peak."
    )
    max_consecutive_losses: int | None = Field(
        None, ge=1, description="Breaker trips after this many losing round trips in a row."
    )
    latency_bound_ms: float | None = Field(
        None, gt=0, description="Pause new orders while median exchange round trip exceeds it."
    )
    latency_window: int = Field(20, ge=1, le=10_000, description="Round trips in the median.")
    anomaly: AnomalySettings | None = Field(None, description="Market-anomaly monitor.")
    report_every_s: float = Field(1.0, gt=0, le=60, description="Symbol -> risk report period.")

    def limits(self) -> RiskLimits:
        anomaly = None
        if self.anomaly is not None:
            a = self.anomaly
            anomaly = AnomalyRule(
                tuple(a.basket), a.window, a.volume_multiple, a.mode, a.recovery_share
            )
        return RiskLimits(
            max_exposure_quote=self.max_exposure_quote,
            exposure_resume_ratio=self.exposure_resume_ratio,
            max_drawdown_quote=self.max_drawdown_quote,
            max_consecutive_losses=self.max_consecutive_losses,
            latency_bound_ms=self.latency_bound_ms,
            latency_window=self.latency_window,
            anomaly=anomaly,
        )


class RaySettings(Strict):
    address: str | None = Field(None, description="Cluster to join; none = embedded on this host.")
    namespace: str = Field("opensqt", pattern=r"^[a-z0-9_-]{1,40}$", description="Ray namespace.")
    dashboard: bool = Field(True, description="Serve the Ray dashboard (embedded only).")
    dashboard_port: int = Field(8265, ge=1, le=65535, description="Dashboard port (127.0.0.1).")
    control_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom resources pinning orchestrator/connector/risk."
    )
    symbol_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom resources every symbol actor needs."
    )
    journal_dir: str = Field(
        "{data_dir}/journal",
        description="Where symbol journals live on the node running the actor; may use "
        "{data_dir} and {node_id} (distinct directories per node on a shared disk).",
    )


class HttpSettings(Strict):
    host: str = Field("127.0.0.1", description="Bind address of /health, /status, /metrics.")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port.")


class EngineSettings(Strict):
    reconcile_every_s: float = Field(30.0, gt=0, description="Periodic reconcile per symbol.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Exchange calls in flight per symbol.")
    reconcile_tolerance_qty: Decimal = Field(
        Decimal(0), ge=0, description="Inventory difference tolerated before a halt."
    )


class ConnectorSettings(Strict):
    rate_limit_per_s: float = Field(20.0, gt=0, description="Account-wide REST calls per second.")
    rate_limit_burst: int = Field(40, ge=1, description="Calls allowed in a burst.")
    max_pending_updates: int = Field(
        10_000, ge=10, description="Per symbol; beyond it the symbol resyncs over REST."
    )
    stale_after_s: float = Field(10.0, gt=0, description="No stream message this long = stale.")
    local_channel: bool = Field(
        True,
        description="Deliver ticks and order updates to symbol actors on the connector's "
        "machine over a private Unix socket instead of one Ray call per delivery.",
    )
    hold_quiet_ticks_ms: int = Field(
        500,
        ge=0,
        le=10_000,
        description="Over the local channel, a tick that cannot change a symbol's decision "
        "does not wake it; it is delivered at the latest this long after the last delivery "
        "(0: deliver every tick).",
    )


class ShutdownSettings(Strict):
    cancel_orders: bool = Field(True, description="Cancel our orders when `mm run` stops.")


class MarketMakerSettings(EnvFirstSettings):
    """`mm run`: every registered symbol on one exchange connection, under Ray."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="MM_", env_nested_delimiter="__"
    )

    data_dir: Path = Field(Path("data"), description="Registry, journals and venue state.")
    exchange: ExchangeSettings = Field(ExchangeSettings(), description="The exchange.")
    grid_defaults: dict[str, Any] = Field(
        default_factory=dict, description="Grid keys shared by every symbol (see GridConfig)."
    )
    symbols: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Symbols registered on the very first start, each with its grid overrides.",
    )
    risk: RiskSettings = Field(RiskSettings(), description="Global risk limits.")
    ray: RaySettings = Field(RaySettings(), description="Ray placement.")
    http: HttpSettings = Field(HttpSettings(), description="Health/status/metrics server.")
    engine: EngineSettings = Field(EngineSettings(), description="Per-symbol engine.")
    connector: ConnectorSettings = Field(ConnectorSettings(), description="Shared connection.")
    shutdown: ShutdownSettings = Field(ShutdownSettings(), description="On Ctrl-C / SIGTERM.")
    status_every_s: float = Field(2.0, gt=0, description="Status line period of `mm run`.")

    @field_validator("symbols")
    @classmethod
    def _symbol_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [s for s in value if not _valid_symbol(s)]
        if bad:
            raise ValueError(f"symbol names must look like BTCUSDT or BTCUSDT-PERP: {bad}")
        return value

    @model_validator(mode="after")
    def _grids(self) -> MarketMakerSettings:
        for symbol, overrides in self.symbols.items():
            grid_for(self.grid_defaults, overrides, where=f"symbols.{symbol}")
        return self


def _valid_symbol(symbol: str) -> bool:
    return re.match(SYMBOL_PATTERN, symbol) is not None


def check_symbol(symbol: str) -> str:
    if not _valid_symbol(symbol):
        raise ConfigError(f"symbol {symbol!r}: must look like BTCUSDT or BTCUSDT-PERP")
    return symbol


def grid_for(defaults: dict[str, Any], overrides: dict[str, Any], *, where: str) -> GridConfig:
    """The grid of one symbol: `overrides` on top of `defaults`, validated; `ConfigError` names
    each bad key as `<where>.<key>`."""
    merged = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return GridConfig(**merged)
    except ValidationError as e:
        raise ConfigError("\n".join(f"{where}.{line}" for line in explain(e, GridConfig))) from e


def journal_dir(settings: MarketMakerSettings, node_id: str) -> Path:
    return Path(settings.ray.journal_dir.format(data_dir=settings.data_dir, node_id=node_id))


class ExchangeConnectorSettings(EnvFirstSettings):
    """`mm connector`: one exchange connection served over gRPC to every client."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="MM_CONNECTOR_", env_nested_delimiter="__"
    )

    data_dir: Path = Field(Path("data/connector"), description="Venue state (simulated).")
    exchange: ExchangeSettings = Field(ExchangeSettings(), description="The exchange it serves.")
    host: str = Field("127.0.0.1", description="Bind address; non-loopback requires a token.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Bearer token every call must carry (env MM_CONNECTOR_TOKEN), 16+ chars.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain (enables TLS).")
    tls_key: Path | None = Field(None, description="PEM private key; must be private (0600).")
    preload_symbols: list[str] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Markets loaded before the health check reports SERVING.",
    )
    stream_buffer: int = Field(
        10_000, ge=10, description="Messages queued per stream client before it is cut off."
    )
    health_every_s: float = Field(1.0, gt=0, le=60, description="Upstream health check period.")
    grace_s: float = Field(5.0, ge=0, le=120, description="Shutdown: time for in-flight calls.")

    @field_validator("preload_symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not _valid_symbol(s)]
        if bad:
            raise ValueError(f"symbol names must look like BTCUSDT or BTCUSDT-PERP: {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExchangeConnectorSettings:
        if self.exchange.kind == "remote":
            raise ValueError("exchange.kind: a connector cannot serve another connector")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (both or neither)")
        if not is_loopback(self.host) and self.token is None:
            raise ValueError(
                f"host {self.host!r} is reachable from other machines: set a token "
                "(MM_CONNECTOR_TOKEN) or bind 127.0.0.1"
            )
        return self
