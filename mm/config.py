"""Configuration: strict pydantic-settings models, read from YAML with `${VAR}` interpolation.

Owns: what a config file may say and the one-line errors when it says something else (key path,
value received, what is allowed). Unknown keys fail. Units live in names. Secrets are `SecretStr`
and never printed. `MM_<SECTION>__<KEY>` environment variables override the file.
Must not: build runtime objects beyond plain parameter values (the CLI composes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mm.core.grid import GridMode, GridParams
from mm.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridConfig(Strict):
    strategy_id: str = Field(
        "grid1",
        pattern=r"^[a-z0-9]{1,6}$",
        description="Short id carried in every client order id (1-6 of [a-z0-9]).",
    )
    mode: Literal["long", "neutral"] = Field(
        "long", description="long: buys below and their closes; neutral: also sells above (shorts)."
    )
    interval: Decimal = Field(gt=0, description="Price distance between levels, in quote.")
    buy_levels: int = Field(10, ge=1, le=1000, description="Opening buy levels below the centre.")
    sell_levels: int = Field(
        10,
        ge=0,
        le=1000,
        description="Levels above the centre (neutral: "
        "opening sells; long: where closes count as inside the window).",
    )
    level_notional: Decimal | None = Field(None, gt=0, description="Quote per opening order.")
    level_qty: Decimal | None = Field(
        None, gt=0, validate_default=True, description="Base qty per opening order."
    )
    min_gap: Decimal = Field(
        Decimal("0.1"),
        ge=0,
        lt=1,
        description="Minimum distance of a new "
        "opening order from the reference price, in intervals.",
    )
    max_open_orders: int = Field(40, ge=1, le=10_000, description="Cap on live orders.")
    inventory_skew_bps: Decimal = Field(
        Decimal(0),
        ge=0,
        le=100,
        description="Reference price shift, bps per quote unit of inventory held at cost.",
    )
    post_only: bool = Field(True, description="Opening orders are post-only (maker).")

    @field_validator("level_qty")
    @classmethod
    def _one_size(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        notional = info.data.get("level_notional")
        if (notional is None) == (value is None):
            raise ValueError("set exactly one of level_notional and level_qty")
        return value

    @field_validator("max_open_orders")
    @classmethod
    def _room_for_openings(cls, value: int, info: ValidationInfo) -> int:
        buy, sell = info.data.get("buy_levels", 0), info.data.get("sell_levels", 0)
        openings = buy + (sell if info.data.get("mode") == "neutral" else 0)
        if value < openings:
            raise ValueError(f"must be at least the number of opening levels ({openings})")
        return value

    def params(self) -> GridParams:
        return GridParams(
            strategy_id=self.strategy_id,
            mode=GridMode(self.mode),
            interval=self.interval,
            buy_levels=self.buy_levels,
            sell_levels=self.sell_levels,
            max_open_orders=self.max_open_orders,
            level_notional=self.level_notional,
            level_qty=self.level_qty,
            min_gap=self.min_gap,
            inventory_skew_bps=self.inventory_skew_bps,
            post_only=self.post_only,
        )


class FaultsConfig(Strict):
    latency_ms: float = Field(0.0, ge=0, le=60_000, description="Added to every call.")
    reject_rate: float = Field(0.0, ge=0, le=1, description="Share of orders refused.")
    timeout_after_accept_rate: float = Field(
        0.0, ge=0, le=1, description="Share of accepted orders whose caller sees a timeout."
    )
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="Share of calls refused (429).")
    drop_update_rate: float = Field(0.0, ge=0, le=1, description="Order updates lost.")
    duplicate_update_rate: float = Field(0.0, ge=0, le=1, description="Order updates repeated.")
    reorder_update_rate: float = Field(
        0.0, ge=0, le=1, description="Updates swapped with the next."
    )
    disconnect_after_messages: int = Field(0, ge=0, description="Break streams after N messages.")
    seed: int = Field(0, description="Seed of the fault dice.")


class SimulatedConfig(Strict):
    balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDT": Decimal(100_000)}, description="Starting balances."
    )
    maker_fee_rate: Decimal = Field(
        Decimal("0.0002"), ge=0, lt=Decimal("0.1"), description="Fee of resting fills, in quote."
    )
    taker_fee_rate: Decimal = Field(
        Decimal("0.0005"), ge=0, lt=Decimal("0.1"), description="Fee of crossing fills, in quote."
    )
    leverage: Decimal = Field(
        Decimal(10), ge=1, le=125, description="Perpetuals: margin locked = notional / leverage."
    )
    partial_fill_ratio: Decimal = Field(
        Decimal(1),
        gt=0,
        le=1,
        description="Share of an order filled each time the price reaches it.",
    )
    consistency_window_ms: int = Field(
        0, ge=0, description="New orders invisible to lookups for this long."
    )
    faults: FaultsConfig = Field(FaultsConfig(), description="Injected misbehaviour.")

    @field_validator("balances")
    @classmethod
    def _no_debt(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        negative = {asset: amount for asset, amount in value.items() if amount < 0}
        if negative:
            raise ValueError(f"balances must not be negative: {negative}")
        return value


class RandomWalkFeed(Strict):
    candles: int = Field(100_000, ge=1, le=50_000_000, description="Number of 1m candles.")
    start_price: Decimal | None = Field(None, gt=0, description="Default: the market's price.")
    volatility: float = Field(0.0005, ge=0, le=0.5, description="Std of log return per candle.")
    drift: float = Field(0.0, ge=-0.1, le=0.1, description="Mean log return per candle.")
    seed: int = Field(1, description="Seed of the walk; same seed, same candles.")


class EnvFirstSettings(BaseSettings):
    """Settings read from a YAML file where `MM_<SECTION>__<KEY>` environment variables win."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings  # the environment overrides the file


class BacktestSettings(EnvFirstSettings):
    """`mm backtest`: one symbol, the simulated venue, a random walk or a data file."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="MM_", env_nested_delimiter="__"
    )

    symbol: str = Field("BTCUSDT", description="BTCUSDT (spot) or BTCUSDT-PERP (perpetual) ...")
    grid: GridConfig = Field(description="The grid to trade (required).")
    exchange: SimulatedConfig = Field(SimulatedConfig(), description="The simulated venue.")
    feed: RandomWalkFeed = Field(RandomWalkFeed(), description="The random walk (no --data).")
    data: Path | None = Field(None, description="CSV of candles or trades instead of the walk.")
    journal_path: str = Field(":memory:", description="SQLite journal (':memory:' for speed).")


class ExchangeCredentials(Strict):
    """API credentials for a live venue. Printing this shows '**********', never the secret."""

    api_key: SecretStr = Field(description="API key of the account.")
    api_secret: SecretStr = Field(description="API secret, used to sign requests.")
    passphrase: SecretStr | None = Field(None, description="API passphrase (OKX, Bitget).")


# -- loading ------------------------------------------------------------------------------------
def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a YAML document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    return _VAR.sub(substitute, value)


_SENSITIVE = ("secret", "key", "token", "password", "passphrase", "credential", "auth")


def _sensitive(key_path: str) -> bool:
    """Values under keys like these are never echoed in an error."""
    return any(word in key_path.lower() for word in _SENSITIVE)


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at `loc` (for 'unknown key' errors)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def explain(error: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for e in error.errors():
        loc = tuple(p for p in e["loc"] if p not in ("function-after",))
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed(model, loc))
            lines.append(f"{key}: unknown key (allowed here: {allowed})")
        elif e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            shown = "(hidden)" if _sensitive(key) else repr(value)
            lines.append(f"{key} = {shown}: {e['msg'].removeprefix('Value error, ')}")
    return lines


def load(
    model: type[BaseSettings],
    path: Path | str,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
):
    """Read, interpolate and validate a YAML config; raise `ConfigError` naming each problem.

    `overrides` (command-line flags) replace top-level keys of the file before validation."""
    env = os.environ if env is None else env
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        return model(**{**interpolate(raw, env), **(overrides or {})})
    except ValidationError as e:
        raise ConfigError("\n".join(explain(e, model))) from e
