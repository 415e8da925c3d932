"""Backtest driver: the fast-forward visits fewer points but must change nothing."""

from decimal import Decimal as D

import numpy as np
import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.feeds import Candles, candle_path, random_walk
from mm.engine.backtest import Backtest
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.store.journal import Journal
from tests.helpers import T0, check_invariants, grid, run

TICK = D("0.01")


def backtest(path, params, *, symbol="BTCUSDT", naive=False, **sim):
    async def go():
        clock = VirtualClock(int(path.ts_ms[0]))
        config = dict(
            balances={"USDT": D(10_000_000)},
            start_prices={symbol.removesuffix("-PERP"): int(path.price[0]) * TICK},
        )
        config.update(sim)
        venue = SimulatedExchange(SimConfig(**config), clock)
        journal = Journal(":memory:")
        engine = SymbolEngine(EngineConfig(symbol, params), venue, journal, clock)
        await engine.start()
        closes = np.arange(3, len(path), 4)
        result = await Backtest(engine, venue, clock, path.ts_ms, path.price, closes).run(
            naive=naive
        )
        return result, engine, venue, journal

    return run(go())


def walk(n, seed, vol=0.001):
    return candle_path(random_walk(n, D("10000"), TICK, volatility=vol, seed=seed))


CASES = {
    "long-spot": dict(
        params=grid(interval=D("25"), buy_levels=8, sell_levels=8, max_open_orders=30)
    ),
    "neutral-perp": dict(
        params=grid("neutral", interval=D("20"), buy_levels=6, sell_levels=6, max_open_orders=20),
        symbol="BTCUSDT-PERP",
    ),
    "tight-budget": dict(
        params=grid(interval=D("15"), buy_levels=5, sell_levels=5, max_open_orders=6)
    ),
    "partial-fills": dict(
        params=grid("neutral", interval=D("30"), buy_levels=5, sell_levels=5, max_open_orders=20),
        symbol="BTCUSDT-PERP",
        partial_fill_ratio=D("0.4"),
    ),
    "skew-notional": dict(
        params=grid(
            interval=D("20"),
            level_notional=D("150"),
            inventory_skew_bps=D("0.05"),
            max_open_orders=12,
        )
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [3, 11])
def test_fast_forward_equals_visiting_every_point(case, seed):
    kwargs = dict(CASES[case])
    params = kwargs.pop("params")
    path = walk(1500, seed)
    fast, engine_f, venue_f, journal_f = backtest(path, params, **kwargs)
    slow, engine_s, _venue_s, journal_s = backtest(path, params, naive=True, **kwargs)
    assert fast.summary.events < slow.summary.events == len(path)
    assert fast.summary.fills > 20  # the case exercises trading, not just waiting
    assert {k: v for k, v in vars(fast.summary).items() if k != "events"} == {
        k: v for k, v in vars(slow.summary).items() if k != "events"
    }
    assert journal_f.orders(engine_f.symbol) == journal_s.orders(engine_s.symbol)
    assert journal_f.fills(engine_f.symbol) == journal_s.fills(engine_s.symbol)
    np.testing.assert_array_equal(fast.equity, slow.equity)
    check_invariants(journal_f, venue_f, engine_f.symbol, "t1")


def test_summary_agrees_with_the_journal_and_the_venue():
    path = walk(3000, 5)
    result, engine, venue, journal = backtest(
        path, grid(interval=D("20"), buy_levels=6, max_open_orders=20)
    )
    s = result.summary
    fills = journal.fills(engine.symbol)
    assert s.fills == len(fills) > 0
    assert s.realized_pnl == sum((f.realized_pnl for f in fills), D(0))
    assert s.fees == sum((f.fee for f in fills), D(0))
    assert s.round_trips == sum(f.closed_round_trip for f in fills)
    assert (
        s.final_inventory
        == venue.account.holdings["BTC"].free + venue.account.holdings["BTC"].locked
    )
    assert s.max_inventory >= s.final_inventory
    usdt = venue.account.holdings["USDT"]
    equity_end = (usdt.free + usdt.locked - D(10_000_000)) + s.final_inventory * s.last_price
    assert s.realized_pnl + s.unrealized_pnl == equity_end  # PnL bookkeeping = cash reality
    assert result.equity[-1] == pytest.approx(float(equity_end))
    assert s.max_drawdown >= 0


def one_candle(o, h, lo, c):
    candles = Candles(
        np.array([T0 + 60_000], dtype=np.int64),
        *(np.array([int(D(x) / TICK)]) for x in (o, h, lo, c)),
        np.zeros(1),
        60_000,
    )
    opening = Candles(
        np.array([T0], dtype=np.int64), *(np.array([int(D(o) / TICK)]),) * 4, np.zeros(1), 60_000
    )
    both = Candles(
        *(
            np.concatenate([getattr(opening, f), getattr(candles, f)])
            for f in ("ts_ms", "open", "high", "low", "close", "volume")
        ),
        60_000,
    )
    return candle_path(both)


def test_candle_fill_rule_up_candle_fills_buy_at_low_then_its_close_at_high():
    # open 10000 -> low 9850 -> high 10040 -> close 10030: buy@9900 fills at the low, its close
    # @10000 is placed then and fills on a later point of the same candle (the high)
    result, _engine, *_ = backtest(one_candle("10000", "10040", "9850", "10030"), grid())
    assert (result.summary.fills, result.summary.round_trips) == (2, 1)
    assert result.summary.realized_pnl == D("1") - D("0.0198") - D("0.02")


def test_candle_fill_rule_down_candle_walks_high_before_low():
    # open 10000 -> high 10040 -> low 9850 -> close 9950: the buy fills at the low, its close
    # @10000 is never reached afterwards (the high came first)
    result, engine, *_ = backtest(one_candle("10000", "10040", "9850", "9950"), grid())
    assert (result.summary.fills, result.summary.round_trips) == (1, 0)
    assert engine.pm.inventory_qty() == D("0.01")
