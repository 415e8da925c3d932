"""Price feeds for the simulated exchange: seeded random walk and replay of candle/trade CSV files.

Owns: turning a source into a *path* — the ordered price points the matching engine walks — with
prices held as integer multiples of the tick size (numpy int64, exact). Must not: match orders or
know about accounts.

Candle path rule (DESIGN 5): open -> low -> high -> close when close >= open, else
open -> high -> low -> close. Trades replay one point per trade.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path as FsPath

import numpy as np

MINUTE_MS = 60_000


class FeedError(ValueError):
    """A data file cannot be read as candles or trades; the message names the line (the caller
    names the file)."""


@dataclass(frozen=True)
class Candles:
    """Columnar candles; prices in ticks (int64)."""

    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_ms: int

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True)
class PricePath:
    """The points a backtest walks: timestamp, price in ticks, index of the candle it belongs to."""

    ts_ms: np.ndarray
    price: np.ndarray
    candle: np.ndarray
    candles: Candles

    def __len__(self) -> int:
        return len(self.ts_ms)


def random_walk(
    n: int,
    start_price: Decimal,
    tick: Decimal,
    *,
    volatility: float,
    drift: float = 0.0,
    seed: int = 0,
    interval_ms: int = MINUTE_MS,
    start_ts_ms: int = 1_700_000_000_000,
) -> Candles:
    """`n` candles of a geometric random walk (log return per candle ~ N(drift, volatility))."""
    if n < 1 or volatility < 0 or start_price <= 0:
        raise ValueError("random walk needs n >= 1, volatility >= 0 and a positive start price")
    rng = np.random.default_rng(seed)
    tick_f = float(tick)
    log_close = math.log(float(start_price)) + np.cumsum(rng.normal(drift, volatility, n))
    close_f = np.exp(log_close)
    open_f = np.empty(n)
    open_f[0] = float(start_price)
    open_f[1:] = close_f[:-1]
    wick = np.abs(rng.normal(0.0, volatility / 2, (2, n)))
    high_f = np.maximum(open_f, close_f) * (1 + wick[0])
    low_f = np.minimum(open_f, close_f) * (1 - wick[1])
    to_ticks = lambda a: np.maximum(np.rint(a / tick_f).astype(np.int64), 1)  # noqa: E731
    o, c = to_ticks(open_f), to_ticks(close_f)
    o[1:] = c[:-1]  # exact continuity after rounding
    h = np.maximum(to_ticks(high_f), np.maximum(o, c))
    lo = np.minimum(to_ticks(low_f), np.minimum(o, c))
    volume = np.round(rng.lognormal(3.0, 0.5, n), 3)
    ts = start_ts_ms + np.arange(n, dtype=np.int64) * interval_ms
    return Candles(ts, o, h, lo, c, volume, interval_ms)


def candle_path(candles: Candles) -> PricePath:
    """Four points per candle, in the order the fill rule prescribes."""
    n = len(candles)
    up = candles.close >= candles.open
    price = np.empty((n, 4), dtype=np.int64)
    price[:, 0] = candles.open
    price[:, 1] = np.where(up, candles.low, candles.high)
    price[:, 2] = np.where(up, candles.high, candles.low)
    price[:, 3] = candles.close
    d = candles.interval_ms
    offsets = np.array([0, d // 3, 2 * d // 3, d - 1], dtype=np.int64)
    ts = (candles.ts_ms[:, None] + offsets[None, :]).reshape(-1)
    index = np.repeat(np.arange(n, dtype=np.int64), 4)
    return PricePath(ts, price.reshape(-1), index, candles)


# -- CSV ------------------------------------------------------------------------------------------
_TS_COLUMNS = ("timestamp", "ts", "time", "open_time", "date", "datetime")
_QTY_COLUMNS = ("qty", "amount", "size", "quantity", "volume")


def _parse_ts(text: str, line: int) -> int:
    """Epoch seconds or milliseconds, or ISO 8601 (no offset means UTC, never local time)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FeedError(
                f"line {line}: timestamp {text!r} is not epoch s/ms or ISO 8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if not math.isfinite(value):
        raise FeedError(f"line {line}: timestamp {text!r} is not a finite number")
    return int(value * 1000) if value < 1e11 else int(value)


def _number(text: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FeedError(f"line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise FeedError(f"line {line}: {column} {text!r} must be a finite number >= 0")
    return value


def _ticks(text: str, tick: Decimal, line: int, column: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise FeedError(f"line {line}: {column} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise FeedError(f"line {line}: {column} {text!r} must be a positive number")
    return int((value / tick).to_integral_value())


def load_csv(path: FsPath | str, tick: Decimal) -> PricePath:
    """A candle CSV (ts, open, high, low, close[, volume]) or a trade CSV (ts, price[, qty])."""
    path = FsPath(path)
    try:
        with path.open(newline="") as fh:
            rows = csv.reader(fh)
            header = [h.strip().lower() for h in next(rows, [])]
            data = list(rows)
    except OSError as e:
        raise FeedError(f"cannot read the file: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise FeedError(
            f"not a text (UTF-8) CSV file: byte {e.start} is {e.object[e.start]:#x}"
        ) from e
    ts_col = next((c for c in _TS_COLUMNS if c in header), None)
    if ts_col is None:
        raise FeedError(f"no timestamp column (one of {', '.join(_TS_COLUMNS)})")
    if not data:
        raise FeedError("no rows after the header")
    if {"open", "high", "low", "close"} <= set(header):
        return candle_path(_candles(data, header, ts_col, tick))
    if "price" in header:
        return _trades(data, header, ts_col, tick)
    raise FeedError("need open/high/low/close columns (candles) or a price column (trades)")


def _candles(data: list[list[str]], header: list[str], ts_col: str, tick: Decimal) -> Candles:
    idx = {name: header.index(name) for name in (ts_col, "open", "high", "low", "close")}
    vol_i = header.index("volume") if "volume" in header else None
    n = len(data)
    cols = {k: np.empty(n, dtype=np.int64) for k in ("ts", "open", "high", "low", "close")}
    volume = np.zeros(n)
    for i, row in enumerate(data):
        line = i + 2
        if len(row) < len(header):
            raise FeedError(f"line {line}: expected {len(header)} columns, got {len(row)}")
        cols["ts"][i] = _parse_ts(row[idx[ts_col]], line)
        for name in ("open", "high", "low", "close"):
            cols[name][i] = _ticks(row[idx[name]], tick, line, name)
        if cols["high"][i] < max(cols["open"][i], cols["close"][i]) or cols["low"][i] > min(
            cols["open"][i], cols["close"][i]
        ):
            raise FeedError(f"line {line}: high/low do not enclose open and close")
        if vol_i is not None and row[vol_i].strip():
            volume[i] = _number(row[vol_i], line, "volume")
    if n > 1 and np.any(np.diff(cols["ts"]) <= 0):
        bad = int(np.argmax(np.diff(cols["ts"]) <= 0)) + 3
        raise FeedError(f"line {bad}: timestamps must strictly increase")
    interval = int(np.median(np.diff(cols["ts"]))) if n > 1 else MINUTE_MS
    return Candles(
        cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"], volume, interval
    )


def _trades(data: list[list[str]], header: list[str], ts_col: str, tick: Decimal) -> PricePath:
    ts_i, price_i = header.index(ts_col), header.index("price")
    qty_i = next((header.index(c) for c in _QTY_COLUMNS if c in header), None)
    n = len(data)
    ts = np.empty(n, dtype=np.int64)
    price = np.empty(n, dtype=np.int64)
    qty = np.zeros(n)
    for i, row in enumerate(data):
        line = i + 2
        if len(row) < len(header):
            raise FeedError(f"line {line}: expected {len(header)} columns, got {len(row)}")
        ts[i] = _parse_ts(row[ts_i], line)
        price[i] = _ticks(row[price_i], tick, line, "price")
        if qty_i is not None and row[qty_i].strip():
            qty[i] = _number(row[qty_i], line, header[qty_i])
        if i and ts[i] < ts[i - 1]:
            raise FeedError(f"line {line}: timestamps must not decrease")
    bucket = ts // MINUTE_MS  # candles start on clock minutes
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n]
    candles = Candles(
        ts_ms=bucket[starts] * MINUTE_MS,
        open=price[starts],
        high=np.maximum.reduceat(price, starts),
        low=np.minimum.reduceat(price, starts),
        close=price[ends - 1],
        volume=np.add.reduceat(qty, starts),
        interval_ms=MINUTE_MS,
    )
    candle_index = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
    return PricePath(ts, price, candle_index, candles)


class LiveFeed:
    """Endless (random walk) or finite (replayed file) source of prices for live simulation.

    Random walk points come in chunks of candles, each generated from `(seed, chunk number)`
    starting at the previous chunk's close, so `state()`/`restore()` resume exactly where a
    persisted exchange left off.
    """

    def __init__(
        self,
        tick: Decimal,
        start_price: Decimal,
        *,
        volatility: float,
        seed: int,
        path: PricePath | None = None,
        chunk: int = 1024,
    ) -> None:
        self._tick = tick
        self._vol = volatility
        self._seed = seed
        self._fixed = path
        self._chunk_size = chunk
        self._chunk = 0
        self._pos = 0
        self._chunk_start = int((start_price / tick).to_integral_value())
        self._points = path.price if path is not None else self._make_chunk()

    def _make_chunk(self) -> np.ndarray:
        candles = random_walk(
            self._chunk_size,
            self._chunk_start * self._tick,
            self._tick,
            volatility=self._vol,
            seed=self._seed * 1_000_003 + self._chunk,
        )
        return candle_path(candles).price

    def next(self) -> int | None:
        """The next price in ticks, or None when a replayed file is exhausted."""
        if self._pos >= len(self._points):
            if self._fixed is not None:
                return None
            self._chunk += 1
            self._chunk_start = int(self._points[-1])
            self._points = self._make_chunk()
            self._pos = 0
        value = int(self._points[self._pos])
        self._pos += 1
        return value

    def state(self) -> dict[str, int]:
        return {"chunk": self._chunk, "pos": self._pos, "chunk_start": self._chunk_start}

    def restore(self, state: dict[str, int]) -> None:
        self._chunk, self._pos = state["chunk"], state["pos"]
        self._chunk_start = state["chunk_start"]
        if self._fixed is None:
            self._points = self._make_chunk()
