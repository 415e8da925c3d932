"""Backtest reports: the printed summary, a JSON summary and a PNG chart.

Owns: presentation of a finished backtest. Floats appear here only (display and plotting); the
JSON keeps money as decimal strings. Must not: run anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from mm.engine.backtest import Summary

_MAX_POINTS = 4000
_MAX_MARKERS = 3000
_MAX_LEVEL_LINES = 120


def _fmt(value: Decimal, places: int = 4) -> str:
    return f"{value:,.{places}f}"


def summary_lines(summary: Summary, symbol: str, seconds: float) -> list[str]:
    rate = summary.candles / seconds if seconds > 0 else float("inf")
    rows = [
        ("symbol", symbol),
        ("candles", f"{summary.candles:,} ({rate:,.0f} candles/s, {seconds:.2f} s)"),
        ("fills", f"{summary.fills:,}"),
        ("round trips", f"{summary.round_trips:,}"),
        ("volume (quote)", _fmt(summary.volume_quote, 2)),
        ("fees (quote)", _fmt(summary.fees)),
        ("realized PnL", _fmt(summary.realized_pnl)),
        ("unrealized PnL", _fmt(summary.unrealized_pnl)),
        ("final inventory", str(summary.final_inventory.normalize())),
        ("max inventory", str(summary.max_inventory.normalize())),
        ("max drawdown", f"{summary.max_drawdown:,.4f}"),
        ("last price", str(summary.last_price)),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def _plain(value: Any) -> Any:
    """Money as decimal strings; floats (measured on the float equity curve, display precision)
    as fixed-point strings too, so every amount in the JSON reads the same way."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return f"{value:.8f}"
    return value


def write_json(directory: Path, summary: Summary, extra: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "summary.json"
    doc = {k: _plain(v) for k, v in asdict(summary).items()} | extra
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= _MAX_POINTS:
        return x, y
    step = int(np.ceil(len(x) / _MAX_POINTS))
    return x[::step], y[::step]


def write_png(
    directory: Path,
    *,
    times_ms: np.ndarray,
    closes: np.ndarray,
    equity: np.ndarray,
    levels: list[float],
    fills: list[tuple[int, float, bool]],
    title: str,
) -> Path:
    """Price with grid levels and fills (buys ^ green, sells v red) above, equity below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "chart.png"
    t = (times_ms - times_ms[0]) / 3_600_000.0  # hours since start
    fig, (ax_price, ax_eq) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    lo, hi = float(np.min(closes)), float(np.max(closes))
    shown = [lv for lv in levels if lo <= lv <= hi]
    if len(shown) > _MAX_LEVEL_LINES:
        shown = shown[:: int(np.ceil(len(shown) / _MAX_LEVEL_LINES))]
    for level in shown:
        ax_price.axhline(level, color="0.85", linewidth=0.5, zorder=0)
    ax_price.plot(*_thin(t, closes), color="tab:blue", linewidth=0.8, label="price")
    if fills:
        step = max(1, len(fills) // _MAX_MARKERS)
        picked = fills[::step]
        ft = np.array([(f[0] - times_ms[0]) / 3_600_000.0 for f in picked])
        fp = np.array([f[1] for f in picked])
        buy = np.array([f[2] for f in picked])
        ax_price.scatter(ft[buy], fp[buy], marker="^", s=14, color="tab:green", label="buy fill")
        ax_price.scatter(ft[~buy], fp[~buy], marker="v", s=14, color="tab:red", label="sell fill")
    ax_price.set_ylabel("price")
    ax_price.set_title(title)
    ax_price.legend(loc="upper left", fontsize=8)
    ax_eq.plot(*_thin(t, equity), color="tab:purple", linewidth=0.8)
    ax_eq.axhline(0, color="0.6", linewidth=0.5)
    ax_eq.set_ylabel("equity (quote)")
    ax_eq.set_xlabel("hours")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def status_table(status: dict[str, Any]) -> str:
    """`mm status`: one row per symbol, then the risk and connector lines."""
    header = ("SYMBOL", "STATE", "INVENTORY", "OPEN", "REALIZED", "UNREALIZED", "PRICE", "TICK AGE")
    rows = [header]
    for symbol, s in sorted((status.get("symbols") or {}).items()):
        age = s.get("last_tick_age_s")
        rows.append(
            (
                symbol,
                str(s.get("state", "?")),
                str(s.get("inventory_qty", "-")),
                str(s.get("open_orders", "-")),
                str(s.get("realized_pnl", "-")),
                _short(s.get("unrealized_pnl")),
                str(s.get("last_price") or "-"),
                f"{age:.1f}s" if isinstance(age, int | float) else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    risk = status.get("risk") or {}
    if "halted" in risk:
        reasons = ", ".join(risk.get("reasons", [])) or "none"
        lines.append(
            f"risk: {'HALTED' if risk['halted'] else 'ok'} (reasons: {reasons}; exposure "
            f"{risk.get('exposure_quote')} quote; breaker {risk.get('breaker_reason') or 'armed'})"
        )
    connector = status.get("connector") or {}
    if "exchange" in connector:
        lines.append(
            f"connector: {connector['exchange']}, {connector.get('ticks_in', 0)} ticks in, "
            f"{connector.get('ticks_conflated', 0)} conflated, "
            f"{connector.get('reconnects', 0)} reconnects"
        )
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"{Decimal(str(value)):.4f}"
    except ArithmeticError:
        return str(value)
