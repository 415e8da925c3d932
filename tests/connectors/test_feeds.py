"""Price feeds (connectors/simulated/feeds.py): random walk, candle path, CSV replay, live feed."""

import os
import time
from decimal import Decimal as D

import numpy as np
import pytest

from connectors.simulated.feeds import (
    MINUTE_MS,
    Candles,
    FeedError,
    LiveFeed,
    candle_path,
    load_csv,
    random_walk,
)

TICK = D("0.01")
T0 = 1_700_000_040_000  # on a minute boundary
T0_ISO = "2023-11-14T22:14:00"  # T0 in UTC


def walk(seed=1, n=500, **kwargs):
    return random_walk(n, D("10000"), TICK, volatility=0.002, seed=seed, **kwargs)


def columns(c):
    return [c.ts_ms, c.open, c.high, c.low, c.close, c.volume]


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def ints(array):
    return [int(v) for v in array]


# -- random walk ---------------------------------------------------------------------------------
def test_random_walk_is_determined_by_its_seed():
    for a, b in zip(columns(walk(seed=7)), columns(walk(seed=7)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(walk(seed=7).close, walk(seed=8).close)


def test_random_walk_is_continuous_and_wicks_enclose_the_body():
    c = walk(seed=3, n=2000, interval_ms=5 * MINUTE_MS, start_ts_ms=T0)
    assert len(c) == 2000 and c.interval_ms == 5 * MINUTE_MS
    assert c.open[0] == 1_000_000  # the start price in ticks
    np.testing.assert_array_equal(c.open[1:], c.close[:-1])
    assert np.all(c.high >= np.maximum(c.open, c.close))
    assert np.all(c.low <= np.minimum(c.open, c.close))
    assert np.all(c.low >= 1)
    np.testing.assert_array_equal(c.ts_ms, T0 + np.arange(2000) * 5 * MINUTE_MS)
    assert c.open.dtype == np.int64 and len(np.unique(c.close)) > 100  # it does move


def test_random_walk_without_volatility_stays_put():
    c = random_walk(10, D("123.45"), TICK, volatility=0.0)
    for prices in (c.open, c.high, c.low, c.close):
        assert ints(prices) == [12345] * 10


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0, start_price=D("100"), volatility=0.01),
        dict(n=5, start_price=D("100"), volatility=-0.01),
        dict(n=5, start_price=D("0"), volatility=0.01),
    ],
)
def test_random_walk_refuses_impossible_parameters(kwargs):
    with pytest.raises(ValueError, match="random walk"):
        random_walk(kwargs.pop("n"), kwargs.pop("start_price"), TICK, **kwargs)


# -- candle path ---------------------------------------------------------------------------------
def candles(rows, interval_ms=MINUTE_MS):
    """Candles from (ts, open, high, low, close) rows in ticks."""
    ts, o, h, lo, c = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    return Candles(ts, o, h, lo, c, np.zeros(len(rows)), interval_ms)


def test_candle_path_goes_low_first_on_up_candles_and_high_first_on_down_candles():
    path = candle_path(
        candles(
            [
                (T0, 100, 110, 90, 105),  # up: open, low, high, close
                (T0 + MINUTE_MS, 105, 112, 95, 100),  # down: open, high, low, close
                (T0 + 2 * MINUTE_MS, 100, 100, 100, 100),  # flat counts as up
            ]
        )
    )
    assert ints(path.price) == [100, 90, 110, 105, 105, 112, 95, 100, 100, 100, 100, 100]
    assert ints(path.candle) == [0] * 4 + [1] * 4 + [2] * 4
    assert ints(path.ts_ms[:4]) == [T0, T0 + 20_000, T0 + 40_000, T0 + 59_999]
    assert ints(path.ts_ms[4:8]) == [t + MINUTE_MS for t in ints(path.ts_ms[:4])]
    assert len(path) == 12 and len(path.candles) == 3


def test_candle_path_of_a_random_walk_visits_every_extreme_in_time_order():
    c = walk(seed=11, n=300)
    path = candle_path(c)
    points = path.price.reshape(-1, 4)
    np.testing.assert_array_equal(points[:, 0], c.open)
    np.testing.assert_array_equal(points[:, 3], c.close)
    np.testing.assert_array_equal(points.max(axis=1), c.high)
    np.testing.assert_array_equal(points.min(axis=1), c.low)
    assert np.all(np.diff(path.ts_ms) > 0)


# -- CSV: candles --------------------------------------------------------------------------------
CANDLE_ROWS = [
    ("100.00", "101.50", "99.00", "101.00", "3.5"),
    ("101.00", "101.20", "100.10", "100.50", "1"),
]


def candle_csv(stamps, header="timestamp,open,high,low,close,volume"):
    lines = [header] + [",".join((ts, *row)) for ts, row in zip(stamps, CANDLE_ROWS, strict=True)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "stamps",
    [
        [str(T0), str(T0 + MINUTE_MS)],
        [str(T0 // 1000), str(T0 // 1000 + 60)],
        [f"{T0 / 1000:.1f}", f"{T0 / 1000 + 60:.1f}"],
        [T0_ISO + "Z", "2023-11-14T22:15:00Z"],
        [T0_ISO + "+00:00", "2023-11-14T23:15:00+01:00"],
    ],
    ids=["epoch-ms", "epoch-s", "epoch-s-fraction", "iso-z", "iso-offset"],
)
def test_load_csv_reads_candles_with_any_timestamp_format(tmp_path, stamps):
    path = load_csv(write(tmp_path, candle_csv(stamps)), TICK)
    assert ints(path.candles.ts_ms) == [T0, T0 + MINUTE_MS]
    assert path.candles.interval_ms == MINUTE_MS
    assert ints(path.candles.open) == [10000, 10100]
    assert ints(path.candles.high) == [10150, 10120]
    assert list(path.candles.volume) == [3.5, 1.0]
    assert ints(path.price) == [10000, 9900, 10150, 10100, 10100, 10120, 10010, 10050]
    assert ints(path.ts_ms[::4]) == [T0, T0 + MINUTE_MS]


def test_load_csv_accepts_other_column_names_and_order(tmp_path):
    text = f" Open_Time ,CLOSE,low,high,open\n{T0},101.00,99.00,101.50,100.00\n"
    path = load_csv(write(tmp_path, text), TICK)
    assert ints(path.price) == [10000, 9900, 10150, 10100]
    assert list(path.candles.volume) == [0.0]


# -- CSV: trades ---------------------------------------------------------------------------------
def test_load_csv_replays_trades_one_point_each_and_aggregates_minute_candles(tmp_path):
    trades = [
        (T0, "100.00", "1"),
        (T0 + 10_000, "100.50", "2"),
        (T0 + 20_000, "99.50", "0.5"),
        (T0 + 20_000, "99.80", "1"),  # same timestamp is fine
        (T0 + 59_999, "100.10", "1"),
        (T0 + MINUTE_MS, "101.00", "3"),
        (T0 + 3 * MINUTE_MS + 5, "102.00", "1"),  # a minute without trades in between
    ]
    text = "time,price,qty\n" + "".join(f"{t},{p},{q}\n" for t, p, q in trades)
    path = load_csv(write(tmp_path, text), TICK)
    assert ints(path.ts_ms) == [t for t, _, _ in trades]
    assert ints(path.price) == [10000, 10050, 9950, 9980, 10010, 10100, 10200]
    assert ints(path.candle) == [0, 0, 0, 0, 0, 1, 2]
    c = path.candles
    assert ints(c.ts_ms) == [T0, T0 + MINUTE_MS, T0 + 3 * MINUTE_MS]
    assert (ints(c.open), ints(c.high), ints(c.low), ints(c.close)) == (
        [10000, 10100, 10200],
        [10050, 10100, 10200],
        [9950, 10100, 10200],
        [10010, 10100, 10200],
    )
    assert list(c.volume) == [5.5, 3.0, 1.0] and c.interval_ms == MINUTE_MS


def test_load_csv_reads_trades_without_a_quantity_column(tmp_path):
    path = load_csv(write(tmp_path, f"ts,price\n{T0},5.00\n{T0 + 1},5.01\n"), TICK)
    assert ints(path.price) == [500, 501] and list(path.candles.volume) == [0.0]


# -- CSV: errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"ts,open,high,low,close\n{T0},100,101,99,100\n{T0 + 1},abc,101,99,100\n", "line 3: open"),
        (f"ts,open,high,low,close\n{T0},100,99.99,99,100\n", "line 2: high/low"),
        (f"ts,open,high,low,close\n{T0},100,101,100.5,100\n", "line 2: high/low"),
        (f"ts,open,high,low,close\n{T0},100,101,99,-1\n", "line 2: close"),
        (f"ts,open,high,low,close\n{T0},100,101,99,0\n", "line 2: close"),
        (f"ts,open,high,low,close\n{T0},100,101,99,NaN\n", "line 2: close"),
        (f"ts,open,high,low,close\n{T0},100,101,99\n", "line 2: expected 5 columns, got 4"),
        ("ts,open,high,low,close\nyesterday,100,101,99,100\n", "line 2: timestamp 'yesterday'"),
        (
            f"ts,open,high,low,close\n{T0},1,1,1,1\n{T0 + 2},1,1,1,1\n{T0 + 1},1,1,1,1\n",
            "line 4: timestamps must strictly increase",
        ),
        (
            f"ts,open,high,low,close\n{T0},1,1,1,1\n{T0},1,1,1,1\n",
            "line 3: timestamps must strictly increase",
        ),
        (f"ts,price\n{T0},100\n{T0 + 1},1e\n", "line 3: price"),
        (f"ts,price\n{T0},100\n{T0 - 1},100\n", "line 3: timestamps must not decrease"),
        ("", "no timestamp column"),
        ("ts,open,high,low,close\n", "no rows after the header"),
        ("price,qty\n100,1\n", "no timestamp column"),
        (f"ts,open,close\n{T0},1,1\n", "need open/high/low/close columns"),
    ],
    ids=[
        "not-a-number",
        "high-below-open",
        "low-above-close",
        "negative",
        "zero",
        "nan",
        "missing-column",
        "bad-timestamp",
        "decreasing-timestamps",
        "repeated-timestamp",
        "trade-not-a-number",
        "trade-decreasing-timestamps",
        "empty-file",
        "header-only",
        "no-timestamp-column",
        "no-price-columns",
    ],
)
def test_load_csv_names_the_problem(tmp_path, text, message):
    with pytest.raises(FeedError, match=message):
        load_csv(write(tmp_path, text), TICK)


def test_load_csv_of_a_missing_file_is_a_feed_error(tmp_path):
    with pytest.raises(FeedError, match="cannot read"):
        load_csv(tmp_path / "nope.csv", TICK)


def test_a_trade_row_with_missing_columns_names_the_line(tmp_path):
    with pytest.raises(FeedError, match="line 3"):
        load_csv(write(tmp_path, f"ts,price,qty\n{T0},100,1\n{T0 + 1}\n"), TICK)


@pytest.mark.parametrize(
    "text",
    [
        f"ts,open,high,low,close,volume\n{T0},1,1,1,1,1\n{T0 + 1},1,1,1,1,lots\n",
        f"ts,price,qty\n{T0},100,1\n{T0 + 1},100,lots\n",
    ],
    ids=["candle-volume", "trade-qty"],
)
def test_a_non_numeric_volume_names_the_line(tmp_path, text):
    with pytest.raises(FeedError, match="line 3"):
        load_csv(write(tmp_path, text), TICK)


@pytest.fixture
def five_hours_west_of_utc():
    """The process runs in a zone other than UTC (no tz database needed for a POSIX TZ)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_iso_timestamps_without_an_offset_are_utc_wherever_the_machine_is(
    tmp_path, five_hours_west_of_utc
):
    text = candle_csv([T0_ISO, "2023-11-14T22:15:00"])
    assert ints(load_csv(write(tmp_path, text), TICK).candles.ts_ms) == [T0, T0 + MINUTE_MS]


# -- live feed -----------------------------------------------------------------------------------
def take(feed, n):
    return [feed.next() for _ in range(n)]


def random_feed(**kwargs):
    return LiveFeed(TICK, D("10000"), volatility=0.003, seed=4, chunk=8, **kwargs)


def test_live_feed_is_deterministic_and_continues_across_chunks():
    points = take(random_feed(), 100)  # 8 candles = 32 points per chunk
    assert points == take(random_feed(), 100)
    assert points[0] == 1_000_000 and all(isinstance(p, int) and p > 0 for p in points)
    for k in (32, 64, 96):  # each chunk opens at the previous chunk's close
        assert points[k] == points[k - 1]
    assert points != take(LiveFeed(TICK, D("10000"), volatility=0.003, seed=5, chunk=8), 100)


@pytest.mark.parametrize("consumed", [0, 5, 31, 32, 33, 70])
def test_live_feed_restore_resumes_the_identical_sequence(consumed):
    feed = random_feed()
    take(feed, consumed)
    saved = dict(feed.state())
    expected = take(feed, 80)
    resumed = random_feed()
    resumed.restore(saved)
    assert take(resumed, 80) == expected


def test_replayed_live_feed_ends_and_restores_its_position():
    path = candle_path(candles([(T0, 100, 110, 90, 105), (T0 + MINUTE_MS, 105, 112, 95, 100)]))
    feed = random_feed(path=path)
    assert take(feed, 3) == [100, 90, 110]
    saved = feed.state()
    assert take(feed, 6) == [105, 105, 112, 95, 100, None]
    resumed = random_feed(path=path)
    resumed.restore(saved)
    assert take(resumed, 6) == [105, 105, 112, 95, 100, None]
