"""Config: the shipped file validates; every problem is one line naming key, value and what is
allowed; `${VAR}` interpolation; `MM_<SECTION>__<KEY>` overrides; secrets never shown."""

import os
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from mm import config
from mm.config import BacktestSettings, ExchangeCredentials
from mm.core.grid import GridMode
from mm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "backtest.yaml"
SECRET = "s3cr3t-Value-8c1f"


@pytest.fixture(autouse=True)
def no_mm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`MM_*` variables of the caller's shell must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("MM_"):
            monkeypatch.delenv(name)


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text())


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def problems(tmp_path: Path, doc: Any, env: dict[str, str] | None = None) -> list[str]:
    """The lines of the ConfigError raised by loading `doc`."""
    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, write(tmp_path, doc), env or {})
    return str(info.value).splitlines()


def with_grid(**values: Any) -> dict[str, Any]:
    doc = shipped()
    doc["grid"].update(values)
    return doc


# -- the shipped file -----------------------------------------------------------------------------
def test_shipped_backtest_config_loads_and_validates() -> None:
    cfg = config.load(BacktestSettings, SHIPPED, {})

    assert cfg.symbol == "BTCUSDT"
    assert cfg.grid.interval == D("325")
    assert cfg.grid.mode == "long"
    assert (cfg.grid.buy_levels, cfg.grid.sell_levels, cfg.grid.max_open_orders) == (20, 20, 60)
    assert cfg.grid.level_notional == D("100")
    assert cfg.grid.level_qty is None
    assert cfg.exchange.balances == {"USDT": D("100000")}
    assert cfg.exchange.maker_fee_rate == D("0.0002")
    assert cfg.exchange.faults.reject_rate == 0
    assert (cfg.feed.candles, cfg.feed.seed) == (100_000, 1)
    assert cfg.data is None
    assert cfg.journal_path == ":memory:"


def test_shipped_grid_section_becomes_grid_params() -> None:
    params = config.load(BacktestSettings, SHIPPED, {}).grid.params()

    assert params.mode is GridMode.LONG
    assert params.interval == D("325")
    assert params.level_notional == D("100")
    assert params.strategy_id == "grid1"


def test_loaded_config_is_frozen() -> None:
    cfg = config.load(BacktestSettings, SHIPPED, {})

    with pytest.raises(ValidationError):
        cfg.grid.interval = D("1")  # type: ignore[misc]


def _models_with_fields() -> list[type[BaseModel]]:
    return [
        BacktestSettings,
        config.GridConfig,
        config.SimulatedConfig,
        config.FaultsConfig,
        config.RandomWalkFeed,
        ExchangeCredentials,
    ]


def test_every_config_field_has_a_description() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models_with_fields()
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []


# -- one line per problem: key path, value received, what is allowed --------------------------
def test_negative_interval_names_key_value_and_bound(tmp_path: Path) -> None:
    [line] = problems(tmp_path, with_grid(interval=-5))

    assert line.startswith("grid.interval = -5: ")
    assert "greater than 0" in line


def test_mode_outside_long_neutral_lists_allowed_values(tmp_path: Path) -> None:
    [line] = problems(tmp_path, with_grid(mode="short"))

    assert line.startswith("grid.mode = 'short': ")
    assert "'long'" in line
    assert "'neutral'" in line


def test_both_level_notional_and_level_qty_is_one_line(tmp_path: Path) -> None:
    [line] = problems(tmp_path, with_grid(level_notional=100, level_qty=0.01))

    assert line.startswith("grid.level_qty = 0.01: ")  # the key and the value received
    assert "set exactly one of level_notional and level_qty" in line


def test_neither_level_notional_nor_level_qty_is_one_line(tmp_path: Path) -> None:
    doc = shipped()
    del doc["grid"]["level_notional"]

    [line] = problems(tmp_path, doc)

    assert line == "grid.level_qty = None: set exactly one of level_notional and level_qty"


@pytest.mark.parametrize(
    ("mode", "max_open_orders", "openings"),
    [("long", 19, 20), ("neutral", 39, 40)],
)
def test_max_open_orders_below_opening_levels(
    tmp_path: Path, mode: str, max_open_orders: int, openings: int
) -> None:
    [line] = problems(tmp_path, with_grid(mode=mode, max_open_orders=max_open_orders))

    assert line == (
        f"grid.max_open_orders = {max_open_orders}: must be at least the number of opening "
        f"levels ({openings})"
    )


def test_max_open_orders_equal_to_opening_levels_is_allowed(tmp_path: Path) -> None:
    cfg = config.load(BacktestSettings, write(tmp_path, with_grid(max_open_orders=20)), {})

    assert cfg.grid.max_open_orders == 20


def test_unknown_top_level_key_lists_allowed_keys(tmp_path: Path) -> None:
    doc = shipped() | {"symbl": "ETHUSDT"}

    [line] = problems(tmp_path, doc)

    allowed = ", ".join(sorted(BacktestSettings.model_fields))
    assert allowed == "data, exchange, feed, grid, journal_path, symbol"
    assert line == f"symbl: unknown key (allowed here: {allowed})"


def test_unknown_nested_key_lists_allowed_keys_of_that_section(tmp_path: Path) -> None:
    [line] = problems(tmp_path, with_grid(intervl=325))

    allowed = ", ".join(sorted(config.GridConfig.model_fields))
    assert line == f"grid.intervl: unknown key (allowed here: {allowed})"


def test_unknown_key_two_levels_down_lists_allowed_keys(tmp_path: Path) -> None:
    doc = shipped()
    doc["exchange"]["faults"]["reject_rat"] = 0.1

    [line] = problems(tmp_path, doc)

    allowed = ", ".join(sorted(config.FaultsConfig.model_fields))
    assert line == f"exchange.faults.reject_rat: unknown key (allowed here: {allowed})"


def test_missing_grid_interval_names_the_key(tmp_path: Path) -> None:
    doc = shipped()
    del doc["grid"]["interval"]

    assert problems(tmp_path, doc) == ["grid.interval: required key is missing"]


def test_empty_file_reports_missing_grid(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {})

    assert str(info.value) == "grid: required key is missing"


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    doc = with_grid(interval=-1, mode="short")
    doc["feed"]["volatility"] = 2

    lines = problems(tmp_path, doc)

    assert len(lines) == 3
    assert {line.split(" = ")[0] for line in lines} == {
        "grid.interval",
        "grid.mode",
        "feed.volatility",
    }


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("symbol: BTCUSDT\ngrid:\n  interval: 325: 4\n  mode: long\n")

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {})

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} line 3: not valid YAML")


def test_tab_indentation_is_bad_yaml_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("symbol: BTCUSDT\ngrid:\n\tinterval: 325\n")

    with pytest.raises(ConfigError, match=r"line 3: not valid YAML"):
        config.load(BacktestSettings, path, {})


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {})

    assert str(info.value) == f"cannot read config {path}: No such file or directory"


def test_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00grid:\n  interval: 1\n")

    with pytest.raises(ConfigError, match=str(path)):
        config.load(BacktestSettings, path, {})


@pytest.mark.parametrize("text", ["- grid\n- symbol\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {})

    assert str(info.value) == f"{path}: the top level must be a mapping of keys"


# -- ${VAR} interpolation ---------------------------------------------------------------------
def test_interpolate_replaces_variables_in_every_string() -> None:
    doc = {"a": "${X}", "b": {"c": ["pre-${Y}-post", 3]}, "d": 1.5}

    out = config.interpolate(doc, {"X": "1", "Y": "two"})

    assert out == {"a": "1", "b": {"c": ["pre-two-post", 3]}, "d": 1.5}
    assert doc["a"] == "${X}"  # input untouched


def test_interpolate_default_used_only_when_unset() -> None:
    doc = {"a": "${X:-7}", "b": "${Y:-7}", "c": "${Z:-}"}

    assert config.interpolate(doc, {"X": "1"}) == {"a": "1", "b": "7", "c": ""}


def test_interpolate_unset_without_default_names_path_and_variable() -> None:
    doc = {"exchange": {"balances": {"USDT": "${MM_TEST_BALANCE}"}}, "l": ["ok", "${NOPE}"]}

    with pytest.raises(ConfigError) as info:
        config.interpolate(doc, {"NOPE": "x"})
    assert str(info.value) == (
        "exchange.balances.USDT: environment variable MM_TEST_BALANCE is not set"
    )

    with pytest.raises(ConfigError) as info:
        config.interpolate({"l": ["ok", "${NOPE}"]}, {})
    assert str(info.value) == "l[1]: environment variable NOPE is not set"


def test_load_interpolates_from_the_given_env_mapping(tmp_path: Path) -> None:
    doc = with_grid(interval="${GRID_INTERVAL}", level_notional="${NOTIONAL:-250}")
    doc["symbol"] = "${SYMBOL:-BTCUSDT}"
    path = write(tmp_path, doc)

    cfg = config.load(BacktestSettings, path, {"GRID_INTERVAL": "650", "SYMBOL": "ETHUSDT"})

    assert cfg.grid.interval == D("650")
    assert cfg.grid.level_notional == D("250")
    assert cfg.symbol == "ETHUSDT"


def test_load_unset_variable_without_default_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, with_grid(interval="${MM_TEST_UNSET_INTERVAL}"))

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {"OTHER": "1"})

    assert str(info.value) == (
        "grid.interval: environment variable MM_TEST_UNSET_INTERVAL is not set"
    )


def test_interpolated_value_is_validated_like_a_literal(tmp_path: Path) -> None:
    path = write(tmp_path, with_grid(interval="${GRID_INTERVAL}"))

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, path, {"GRID_INTERVAL": "-3"})

    assert str(info.value).startswith("grid.interval = '-3': ")


# -- environment overrides ----------------------------------------------------------------------
def test_env_override_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_GRID__INTERVAL", "650")

    cfg = config.load(BacktestSettings, SHIPPED, {})

    assert cfg.grid.interval == D("650")
    # the rest of the grid section still comes from the file
    assert cfg.grid.level_notional == D("100")
    assert cfg.grid.buy_levels == 20


def test_env_override_of_top_level_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_SYMBOL", "ETHUSDT")

    assert config.load(BacktestSettings, SHIPPED, {}).symbol == "ETHUSDT"


def test_bad_env_override_is_explained_like_a_file_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_GRID__INTERVAL", "-1")

    with pytest.raises(ConfigError) as info:
        config.load(BacktestSettings, SHIPPED, {})

    [line] = str(info.value).splitlines()
    assert line.startswith("grid.interval = '-1': ")
    assert "greater than 0" in line


# -- credentials ----------------------------------------------------------------------------------
def credentials() -> ExchangeCredentials:
    return ExchangeCredentials(
        api_key=SECRET + "-key", api_secret=SECRET + "-secret", passphrase=SECRET + "-pass"
    )


def test_credentials_keep_their_values() -> None:
    creds = credentials()

    assert creds.api_key.get_secret_value() == SECRET + "-key"
    assert creds.passphrase is not None
    assert creds.passphrase.get_secret_value() == SECRET + "-pass"


def test_credentials_are_never_printed() -> None:
    creds = credentials()

    for shown in (str(creds), repr(creds), creds.model_dump_json(), f"{creds}", str(creds.api_key)):
        assert SECRET not in shown
    assert "**********" in creds.model_dump_json()


def explained(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        ExchangeCredentials(**values)
    return "\n".join(config.explain(info.value, ExchangeCredentials))


def test_error_about_api_key_or_secret_hides_the_value() -> None:
    key_error = explained(api_key=73914682, api_secret=SECRET)
    secret_error = explained(api_key=SECRET, api_secret=73914682)

    assert key_error == "api_key = (hidden): Input should be a valid string"
    assert secret_error == "api_secret = (hidden): Input should be a valid string"


def test_unknown_credentials_key_does_not_show_its_value() -> None:
    message = explained(api_key=SECRET, api_secret=SECRET, apikey2=SECRET)

    assert SECRET not in message
    assert message.startswith(
        "apikey2: unknown key (allowed here: api_key, api_secret, passphrase)"
    )


def test_credentials_loaded_from_yaml_hide_values_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("api_key: 73914682\napi_secret: ${API_SECRET}\n")

    with pytest.raises(ConfigError) as info:
        config.load(ExchangeCredentials, path, {"API_SECRET": SECRET})  # type: ignore[arg-type]

    assert "73914682" not in str(info.value)
    assert SECRET not in str(info.value)


def test_error_about_passphrase_hides_the_value() -> None:
    message = explained(api_key=SECRET, api_secret=SECRET, passphrase=73914682)

    assert message.startswith("passphrase")
    assert "73914682" not in message


def test_credentials_are_frozen() -> None:
    creds = credentials()

    with pytest.raises(ValidationError):
        creds.api_key = creds.api_secret  # type: ignore[misc]
