"""`mm backtest`: the real program in a subprocess (and `main()` in-process) — summary rows,
determinism, reports, data files, exit codes 0/2 and one `config error: ...` line per problem."""

import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.simulated import markets
from mm import cli, config
from mm.errors import ConfigError
from mm.observability.logs import RedactingFilter

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "backtest.yaml"
NUMBER = re.compile(r"-?[\d,]+(\.\d+)?")
SUMMARY_ROWS = (
    "fills",
    "round trips",
    "volume (quote)",
    "fees (quote)",
    "realized PnL",
    "unrealized PnL",
    "final inventory",
    "max inventory",
    "max drawdown",
    "last price",
)
MONEY_KEYS = (
    "volume_quote",
    "fees",
    "realized_pnl",
    "unrealized_pnl",
    "final_inventory",
    "max_inventory",
    "last_price",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000


def mm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m mm.cli ...` from the repository root with a clean `MM_*` environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "mm.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows(stdout: str) -> dict[str, str]:
    """The `name  value` rows of the printed summary."""
    found = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\S.*?)\s{2,}(\S.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def count(text: str) -> int:
    return int(text.replace(",", ""))


def config_file(tmp_path: Path, symbol: str | None = None, **grid: Any) -> Path:
    doc = yaml.safe_load(SHIPPED.read_text())
    if symbol is not None:
        doc["symbol"] = symbol
    doc["grid"].update(grid)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def candle_csv(path: Path, closes: list[int]) -> Path:
    """Candles at one-minute steps; each opens at the previous close."""
    lines = ["timestamp,open,high,low,close,volume"]
    previous = closes[0]
    for i, close in enumerate(closes):
        high, low = max(previous, close) + 20, min(previous, close) - 20
        lines.append(f"{T0 + i * 60_000},{previous},{high},{low},{close},1.5")
        previous = close
    path.write_text("\n".join(lines) + "\n")
    return path


def oscillation(n: int) -> list[int]:
    """Swings between 65,000 and 64,400: crosses the 64,675 buy and its 65,000 close."""
    return [65_000 if i % 2 == 0 else 64_400 for i in range(n)]


def without_timing(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if not line.startswith("candles ")]


@pytest.fixture(scope="module")
def default_run() -> subprocess.CompletedProcess[str]:
    return mm("backtest", "--candles", "2000")


@pytest.fixture(scope="module")
def report_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    directory = tmp_path_factory.mktemp("report") / "nested" / "out"
    return mm(
        "backtest", "--config", SHIPPED, "--candles", "2000", "--report", directory
    ), directory


@pytest.fixture
def clean_global_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`main()` installs the root handler and quiets `mm.engine`; put both back afterwards."""
    for name in list(os.environ):
        if name.startswith("MM_"):
            monkeypatch.delenv(name)
    root, engine = logging.getLogger(), logging.getLogger("mm.engine")
    level, engine_level = root.level, engine.level
    yield
    for handler in root.handlers[:]:
        if any(isinstance(f, RedactingFilter) for f in handler.filters):
            root.removeHandler(handler)
    root.setLevel(level)
    engine.setLevel(engine_level)


# -- a normal run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_config_prints_the_summary(default_run: subprocess.CompletedProcess[str]) -> None:
    assert default_run.returncode == 0, default_run.stderr
    assert default_run.stderr == ""  # no progress bar when stderr is not a terminal
    summary = rows(default_run.stdout)

    assert summary["symbol"] == "BTCUSDT"
    assert re.fullmatch(r"2,000 \([\d,]+ candles/s, \d+\.\d\d s\)", summary["candles"])
    for name in SUMMARY_ROWS:
        assert NUMBER.fullmatch(summary[name]), (name, summary[name])
    assert count(summary["fills"]) > 0
    assert count(summary["round trips"]) <= count(summary["fills"])


@pytest.mark.slow
def test_same_command_twice_prints_the_same_summary(
    default_run: subprocess.CompletedProcess[str],
) -> None:
    again = mm("backtest", "--candles", "2000")

    assert again.returncode == default_run.returncode == 0
    assert without_timing(again.stdout) == without_timing(default_run.stdout)
    assert len(without_timing(again.stdout)) == len(default_run.stdout.splitlines()) - 1


# -- --report -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_writes_summary_json_with_decimal_strings(
    report_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, directory = report_run
    assert run.returncode == 0, run.stderr
    assert f"report: {directory / 'summary.json'} {directory / 'chart.png'}" in run.stdout

    doc = json.loads((directory / "summary.json").read_text())
    printed = rows(run.stdout)

    assert doc["fills"] == count(printed["fills"])
    assert doc["round_trips"] == count(printed["round trips"])
    assert doc["candles"] == 2000
    assert doc["symbol"] == "BTCUSDT"
    for key in MONEY_KEYS:
        assert isinstance(doc[key], str), key
        D(doc[key])  # a decimal string, not a float
    assert D(doc["fees"]).quantize(D("0.0001")) == D(printed["fees (quote)"])
    assert doc["grid"]["interval"] == "325"


@pytest.mark.slow
def test_report_max_drawdown_is_a_decimal_string(
    report_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, directory = report_run
    assert run.returncode == 0, run.stderr

    doc = json.loads((directory / "summary.json").read_text())

    assert isinstance(doc["max_drawdown"], str)


@pytest.mark.slow
def test_report_writes_a_png_chart(
    report_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, directory = report_run
    assert run.returncode == 0, run.stderr

    png = (directory / "chart.png").read_bytes()

    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 1000


# -- --data ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_data_candle_csv_is_replayed(tmp_path: Path) -> None:
    data = candle_csv(tmp_path / "candles.csv", oscillation(41))

    run = mm("backtest", "--data", data)

    assert run.returncode == 0, run.stderr
    summary = rows(run.stdout)
    assert summary["candles"].startswith("41 (")
    assert count(summary["fills"]) > 0
    assert count(summary["round trips"]) > 0
    assert summary["last price"] == "65000.00"


@pytest.mark.slow
def test_data_trade_csv_with_iso_timestamps_is_replayed(tmp_path: Path) -> None:
    data = tmp_path / "trades.csv"
    data.write_text(
        "timestamp,price,qty\n"
        "2023-11-14T22:13:05Z,65000,0.1\n"
        "2023-11-14T22:13:40Z,64600,0.2\n"
        "2023-11-14T22:14:10Z,64650.5,0.1\n"
        "2023-11-14T22:15:00Z,65010,0.3\n"
    )

    run = mm("backtest", "--data", data)

    assert run.returncode == 0, run.stderr
    summary = rows(run.stdout)
    assert summary["candles"].startswith("3 (")  # three clock minutes
    assert summary["last price"] == "65010.00"


@pytest.mark.slow
def test_broken_data_csv_exits_2_naming_the_line(tmp_path: Path) -> None:
    data = tmp_path / "broken.csv"
    data.write_text(
        "timestamp,open,high,low,close\n"
        f"{T0},65000,65100,64900,65050\n"
        f"{T0 + 60_000},65050,65100,64000,abc\n"
    )

    run = mm("backtest", "--data", data)

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"config error: data {data}: line 3: close 'abc' is not a number"
    ]


@pytest.mark.slow
def test_data_file_that_is_not_text_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "binary.csv"
    data.write_bytes(b"\xff\xfe\x00\x01 not a csv\n")

    run = mm("backtest", "--data", data)

    assert "Traceback" not in run.stderr
    assert run.returncode == 2
    assert run.stderr.startswith(f"config error: data {data}")


# -- bad configuration ------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_config_values_exit_2_with_exactly_the_config_error_lines(
    tmp_path: Path, clean_global_logging: None
) -> None:
    path = config_file(tmp_path, interval=-5, mode="short")
    with pytest.raises(ConfigError) as info:
        config.load(config.BacktestSettings, path, {})
    expected = [f"config error: {line}" for line in str(info.value).splitlines()]

    run = mm("backtest", "--config", path)

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == expected
    assert sorted(line.split(" = ")[0] for line in expected) == [
        "config error: grid.interval",
        "config error: grid.mode",
    ]


@pytest.mark.slow
def test_unknown_symbol_exits_2_listing_allowed_symbols(tmp_path: Path) -> None:
    run = mm("backtest", "--config", config_file(tmp_path, symbol="FOOUSDT"))

    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("config error: symbol = 'FOOUSDT': not listed; allowed: ")
    allowed = line.split("allowed: ")[1].split(", ")
    assert set(allowed) == {s for b in markets.SYMBOLS for s in (b, f"{b}-PERP")}


@pytest.mark.slow
def test_interval_not_a_multiple_of_tick_size_exits_2(tmp_path: Path) -> None:
    run = mm("backtest", "--config", config_file(tmp_path, interval=325.005))

    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "config error: grid.interval = 325.005: must be a multiple of BTCUSDT's tick size 0.01"
    ]


@pytest.mark.slow
def test_neutral_mode_on_spot_exits_2(tmp_path: Path) -> None:
    run = mm("backtest", "--config", config_file(tmp_path, mode="neutral"), "--candles", "50")

    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("config error: grid.mode = 'neutral' on spot BTCUSDT")


# -- progress and perpetuals ------------------------------------------------------------------
@pytest.mark.slow
def test_progress_flag_draws_a_tqdm_bar_on_stderr() -> None:
    run = mm("backtest", "--candles", "300", "--progress")

    assert run.returncode == 0, run.stderr
    assert "backtest: 100%|" in run.stderr
    assert "1.20k/1.20k" in run.stderr  # 4 path points per candle
    assert "backtest" not in run.stdout


@pytest.mark.slow
def test_perpetual_symbol_in_neutral_mode_runs(tmp_path: Path) -> None:
    path = config_file(tmp_path, symbol="BTCUSDT-PERP", mode="neutral")

    run = mm("backtest", "--config", path, "--candles", "2000", "--no-progress")

    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    summary = rows(run.stdout)
    assert summary["symbol"] == "BTCUSDT-PERP"
    assert count(summary["fills"]) > 0


# -- in-process -----------------------------------------------------------------------------------
def test_main_in_process_returns_0_and_prints_summary(
    capsys: pytest.CaptureFixture[str], clean_global_logging: None
) -> None:
    code = cli.main(["backtest", "--config", str(SHIPPED), "--candles", "300", "-v"])

    out, err = capsys.readouterr()
    assert code == 0
    assert "Traceback" not in err
    summary = rows(out)
    assert summary["candles"].startswith("300 (")
    assert set(SUMMARY_ROWS) <= set(summary)


def test_main_in_process_bad_candles_returns_2(
    capsys: pytest.CaptureFixture[str], clean_global_logging: None
) -> None:
    code = cli.main(["backtest", "--config", str(SHIPPED), "--candles", "0"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["config error: --candles = 0: must be at least 1"]


def test_main_in_process_missing_config_returns_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_global_logging: None
) -> None:
    missing = tmp_path / "nope.yaml"

    code = cli.main(["backtest", "--config", str(missing)])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"config error: cannot read config {missing}: No such file or directory"
    ]


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["backtest", "--candles", "many"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)

    assert info.value.code == 2
    assert "usage: mm" in capsys.readouterr().err


def test_console_script_mm_is_cli_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert project["project"]["scripts"]["mm"] == "mm.cli:main"
    assert callable(cli.main)
