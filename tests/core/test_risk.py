import statistics
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm.core.model import Candle
from mm.core.risk import (
    AnomalyDetector,
    AnomalyRule,
    CircuitBreaker,
    ExposureCap,
    ExposureReport,
    LatencyGuard,
    RiskBook,
    RiskLimits,
)


def rep(symbol="BTC", qty="0", price="100", realized="0", unrealized="0", closed=(), ts=0):
    return ExposureReport(
        symbol, D(qty), D(price), D(realized), D(unrealized), tuple(D(p) for p in closed), ts
    )


def candles(last_close, last_volume, window=3, close="100", volume="10"):
    """`window` flat candles (close, volume), then the one under test."""
    flat = [Candle(i, D(close), D(close), D(close), D(close), D(volume)) for i in range(window)]
    c, v = D(last_close), D(last_volume)
    return [*flat, Candle(window, c, c, c, c, v)]


CRASH = candles("90", "40")  # below MA(100) with volume 40 > 3 x 10
CALM = candles("101", "10")  # at/above MA: recovered
DIP = candles("90", "10")  # below MA on normal volume: neither anomalous nor recovered


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_exposure_quote": D(0)}, "max_exposure_quote must be a Decimal > 0 or None, got"),
        ({"max_exposure_quote": D(-5)}, "max_exposure_quote"),
        ({"max_exposure_quote": 1000.0}, "max_exposure_quote must be a Decimal"),
        ({"max_exposure_quote": D("NaN")}, "max_exposure_quote"),
        ({"exposure_resume_ratio": D(0)}, "exposure_resume_ratio must be a number in (0, 1]"),
        ({"exposure_resume_ratio": D("1.1")}, "exposure_resume_ratio"),
        ({"max_drawdown_quote": D(-1)}, "max_drawdown_quote"),
        ({"max_consecutive_losses": 0}, "max_consecutive_losses must be an integer >= 1"),
        ({"max_consecutive_losses": True}, "max_consecutive_losses"),
        ({"latency_bound_ms": 0.0}, "latency_bound_ms must be a number > 0 or None"),
        ({"latency_bound_ms": float("inf")}, "latency_bound_ms"),
        ({"latency_window": 0}, "latency_window must be an integer >= 1"),
        ({"latency_resume_ratio": 1.5}, "latency_resume_ratio must be a number in (0, 1]"),
        ({"anomaly": "BTC"}, "anomaly must be an AnomalyRule"),
    ],
)
def test_bad_limits_raise_a_helpful_error(kwargs, message):
    with pytest.raises(ValueError, match="got") as raised:
        RiskLimits(**kwargs)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"basket": ()}, "anomaly.basket must name at least one symbol"),
        ({"basket": "BTC"}, "anomaly.basket must be a list of symbols"),
        ({"basket": ("BTC", "BTC")}, "lists a symbol twice"),
        ({"basket": ("BTC",), "window": 1}, "anomaly.window must be an integer >= 2, got 1"),
        ({"basket": ("BTC",), "volume_multiple": D(0)}, "anomaly.volume_multiple"),
        ({"basket": ("BTC",), "mode": "most"}, "anomaly.mode must be one of ('all', 'any')"),
        ({"basket": ("BTC",), "recovery_share": D(0)}, "anomaly.recovery_share"),
        ({"basket": ("BTC",), "recovery_share": D(2)}, "anomaly.recovery_share"),
    ],
)
def test_bad_anomaly_rule_raises_a_helpful_error(kwargs, message):
    with pytest.raises(ValueError) as raised:
        AnomalyRule(**kwargs)
    assert message in str(raised.value)


def test_anomaly_basket_from_a_list_becomes_a_tuple():
    assert AnomalyRule(["BTC", "ETH"]).basket == ("BTC", "ETH")


# -- exposure -----------------------------------------------------------------------------------
def test_exposure_quote_is_absolute_notional():
    assert rep(qty="-2", price="50").exposure_quote == D(100)
    assert rep(qty="3", price="0").exposure_quote == D(0)


def test_exposure_cap_blocks_at_cap_and_lifts_only_below_cap_times_ratio():
    cap = ExposureCap(D(1000), D("0.9"))
    assert cap.update(D("999.99")) is False
    assert cap.update(D(1000)) is True
    assert cap.update(D(950)) is True  # between 900 and 1000: still blocked
    assert cap.update(D(900)) is True  # not below 900 yet
    assert cap.update(D("899.99")) is False
    assert cap.update(D(950)) is False  # below the cap again: not blocked


def test_no_cap_never_blocks():
    assert ExposureCap(None).update(D(10**12)) is False


def test_book_sums_latest_report_per_symbol_and_forget_removes_it():
    book = RiskBook(RiskLimits(max_exposure_quote=D(1000)))
    book.report(rep("BTC", qty="4", price="100"))
    state = book.report(rep("ETH", qty="-5", price="100"))
    assert state.exposure_quote == D(900)
    assert not state.halted
    state = book.report(rep("BTC", qty="5", price="100"))  # replaces BTC's 400
    assert state.exposure_quote == D(1000)
    assert state.reasons == ("exposure",)
    assert state.halted
    state = book.report(rep("BTC", qty="4", price="100"))  # 900: not below 900 yet
    assert state.reasons == ("exposure",)
    state = book.forget("ETH")
    assert state.exposure_quote == D(400)
    assert not state.halted
    assert book.forget("ETH") == state  # idempotent


def test_round_trips_of_a_stale_or_repeated_report_are_not_counted_again():
    book = RiskBook(RiskLimits(max_consecutive_losses=2))
    book.report(rep(qty="1", closed=["-1"], ts=10))
    state = book.report(rep(qty="1", closed=["-1"], ts=10))  # a retry of the same report
    assert state.losing_streak == 1
    state = book.report(rep(qty="9", closed=["-1"], ts=5))  # not newer than what we counted
    assert not state.halted
    assert state.exposure_quote == D(900)  # the exposure that arrived last stands
    assert book.report(rep(closed=["-1"], ts=11)).reasons == ("breaker",)


# -- circuit breaker ----------------------------------------------------------------------------
def test_breaker_trips_on_drawdown_from_peak_and_stays_tripped_until_reset():
    book = RiskBook(RiskLimits(max_drawdown_quote=D(50)))
    book.report(rep("BTC", realized="80", unrealized="20"))
    state = book.report(rep("ETH", realized="-10"))
    assert (state.total_pnl, state.peak_pnl, state.halted) == (D(90), D(100), False)
    state = book.report(rep("ETH", realized="-49"))  # drawdown 49
    assert not state.halted
    state = book.report(rep("ETH", realized="-50"))  # drawdown 50 >= 50
    assert state.reasons == ("breaker",)
    assert state.breaker_reason.startswith("drawdown 50 >= 50")
    state = book.report(rep("ETH", realized="500"))  # PnL recovers: still tripped
    assert state.reasons == ("breaker",)
    state = book.reset()
    assert not state.halted
    assert state.breaker_reason == ""
    assert state.peak_pnl == state.total_pnl == D(600)


def test_reset_measures_drawdown_from_the_current_total():
    book = RiskBook(RiskLimits(max_drawdown_quote=D(50)))
    book.report(rep(realized="-60"))
    assert book.state().halted
    assert book.reset().peak_pnl == D(-60)
    assert not book.report(rep(realized="-100")).halted  # 40 below the new peak
    assert book.report(rep(realized="-110")).halted


def test_breaker_trips_after_consecutive_losses_across_symbols():
    book = RiskBook(RiskLimits(max_consecutive_losses=3))
    book.report(rep("BTC", closed=["-1", "-2"]))
    state = book.report(rep("ETH", closed=["0"]))  # break-even resets the streak
    assert state.losing_streak == 0
    book.report(rep("ETH", closed=["-1"]))
    state = book.report(rep("BTC", closed=["-1"]))
    assert (state.losing_streak, state.halted) == (2, False)
    state = book.report(rep("ETH", closed=["-3", "5"]))  # third loss trips before the win
    assert state.reasons == ("breaker",)
    assert state.breaker_reason == "consecutive_losses 3 >= 3"
    assert state.losing_streak == 0
    state = book.reset()
    assert not state.halted


def test_a_winning_trip_resets_the_streak():
    breaker = CircuitBreaker(max_consecutive_losses=2)
    assert breaker.observe_round_trips([D(-1), D(1), D(-1)]) is False
    assert breaker.losing_streak == 1
    assert breaker.observe_round_trips([D(-1)]) is True


def test_manual_trip_and_reset():
    book = RiskBook(RiskLimits())
    state = book.trip("operator pressed stop")
    assert state.halted
    assert state.reasons == ("breaker",)
    assert state.breaker_reason == "manual: operator pressed stop"
    assert book.trip("again").breaker_reason == "manual: operator pressed stop"  # first wins
    assert book.reset() == book.reset() == book.state()
    assert not book.state().halted


def test_breaker_restores_from_persisted():
    limits = RiskLimits(max_drawdown_quote=D(50), max_consecutive_losses=5)
    book = RiskBook(limits)
    book.report(rep("BTC", realized="100", closed=["-1", "-1"]))
    book.trip("maintenance")
    saved = book.persisted()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in saved.items())
    restored = RiskBook(limits, saved)
    state = restored.state()
    assert state.halted
    assert state.breaker_reason == "manual: maintenance"
    assert (state.peak_pnl, state.losing_streak) == (D(100), 2)
    assert not RiskBook(limits, RiskBook(limits).persisted()).state().halted


def test_restored_peak_counts_toward_drawdown():
    limits = RiskLimits(max_drawdown_quote=D(50))
    book = RiskBook(limits, {"peak_pnl": "200"})
    assert book.report(rep(realized="150")).halted


def test_restart_keeps_each_symbols_pnl_until_it_reports_again():
    limits = RiskLimits(max_drawdown_quote=D(250))
    book = RiskBook(limits)
    book.report(rep("ETH", realized="-200"))
    state = book.report(rep("BTC", realized="300"))
    assert (state.total_pnl, state.peak_pnl, state.halted) == (D(100), D(100), False)
    restored = RiskBook(limits, book.persisted())
    state = restored.report(rep("ETH", realized="-200"))  # BTC has not reported yet
    assert (state.total_pnl, state.halted) == (D(100), False)
    assert not restored.report(rep("BTC", realized="100")).halted  # drawdown 200
    assert restored.report(rep("BTC", realized="50")).halted  # drawdown 250


def test_a_report_counted_before_a_restart_and_sent_again_counts_once():
    """The risk actor persisted a report's losing round trip, then died before answering; the
    symbol sends the same report again (same ts_ms) to the restarted actor."""
    limits = RiskLimits(max_consecutive_losses=2)
    book = RiskBook(limits)
    book.report(rep("BTC", qty="1", closed=["-1"], ts=10))
    restored = RiskBook(limits, book.persisted())
    state = restored.report(rep("BTC", qty="1", closed=["-1"], ts=10))
    assert (state.losing_streak, state.halted) == (1, False)
    assert restored.report(rep("BTC", closed=["-1"], ts=11)).reasons == ("breaker",)
    restored.forget("BTC")  # a symbol removed and added again starts afresh
    assert "ts:BTC" not in restored.persisted()


def test_a_symbol_whose_clock_is_behind_the_saved_ts_stays_in_the_exposure_cap():
    limits = RiskLimits(max_exposure_quote=D(500))
    book = RiskBook(limits)
    book.report(rep("BTC", qty="1", ts=2_000_000))
    restored = RiskBook(limits, book.persisted())  # the symbol now runs on a slower clock
    assert restored.report(rep("BTC", qty="6", ts=1_000_000)).reasons == ("exposure",)


@pytest.mark.parametrize(
    "saved",
    [
        {"breaker_tripped": "yes"},
        {"peak_pnl": "lots"},
        {"losing_streak": "-1"},
        {"pnl:X": "nan"},
        {"ts:X": "1.5"},
    ],
)
def test_corrupt_saved_state_raises(saved):
    with pytest.raises(ValueError, match="saved"):
        RiskBook(RiskLimits(), saved)


def test_forget_does_not_turn_a_removed_winner_into_a_drawdown():
    book = RiskBook(RiskLimits(max_drawdown_quote=D(50)))
    book.report(rep("BTC", realized="500"))
    book.report(rep("ETH", realized="-10"))
    state = book.forget("BTC")
    assert (state.total_pnl, state.halted) == (D(-10), False)
    assert book.report(rep("ETH", realized="-59")).halted  # drawdown still measured


# -- latency ------------------------------------------------------------------------------------
def test_latency_guard_uses_the_median_with_hysteresis():
    guard = LatencyGuard(100.0, window=3, resume_ratio=0.8)
    assert guard.median_ms is None
    assert guard.observe(500) is True  # one sample: median 500 > 100
    guard.observe(10)  # median of [500, 10] = 255
    assert guard.triggered
    guard.observe(10)  # median of [500, 10, 10] = 10 < 80 -> clears
    assert guard.median_ms == 10
    assert guard.triggered is False
    assert guard.observe(1000) is False  # [10, 10, 1000]: a single spike does not trigger
    assert guard.observe(101) is True  # [10, 1000, 101] -> 101 > 100
    assert guard.observe(90) is True  # [1000, 101, 90] -> 101
    assert guard.observe(85) is True  # [101, 90, 85] -> 90: above 80, stays triggered
    assert guard.observe(70) is True  # [90, 85, 70] -> 85
    assert guard.observe(70) is False  # [85, 70, 70] -> 70 < 80


def test_latency_exactly_at_bound_does_not_trigger():
    guard = LatencyGuard(100.0, window=1)
    assert guard.observe(100) is False
    assert guard.observe(100.5) is True


def test_latency_without_bound_reports_but_never_halts():
    book = RiskBook(RiskLimits())
    for ms in (1e6, 2e6):
        state = book.observe_latency(ms)
    assert state.latency_ms == 1.5e6
    assert not state.halted


def test_book_latency_reason():
    book = RiskBook(RiskLimits(latency_bound_ms=50, latency_window=2))
    assert book.state().latency_ms is None
    state = book.observe_latency(60)
    assert (state.reasons, state.latency_ms) == (("latency",), 60.0)
    assert book.observe_latency(20).halted  # median 40: not below 50 * 0.8
    assert not book.observe_latency(10).halted  # median 15


@pytest.mark.parametrize("ms", [-1, float("nan")])
def test_bad_latency_sample_raises(ms):
    with pytest.raises(ValueError, match="round trip"):
        LatencyGuard(None).observe(ms)


# -- anomaly ------------------------------------------------------------------------------------
def rule(basket=("BTC", "ETH"), **kwargs):
    return AnomalyRule(basket, window=3, **kwargs)


def test_anomaly_all_mode_needs_every_symbol():
    detector = AnomalyDetector(rule(mode="all"))
    detector.update("BTC", CRASH)
    assert not detector.triggered
    detector.update("ETH", CRASH)
    assert detector.triggered
    assert detector.anomalous_symbols() == ("BTC", "ETH")


def test_anomaly_any_mode_needs_one_symbol():
    detector = AnomalyDetector(rule(mode="any"))
    detector.update("ETH", CRASH)
    assert detector.triggered


def test_anomaly_needs_both_low_price_and_high_volume_strictly():
    detector = AnomalyDetector(rule(("BTC",)))
    for series in (candles("90", "30"), candles("100", "40"), DIP, candles("110", "99")):
        detector.update("BTC", series)
        assert not detector.triggered, series[-1]
    detector.update("BTC", candles("99.99", "30.01"))
    assert detector.triggered


def test_only_the_last_window_candles_feed_the_averages():
    detector = AnomalyDetector(rule(("BTC",)))
    old = [Candle(-1, D(1), D(1), D(1), D(1), D(10**6))]  # would hide the crash if averaged in
    detector.update("BTC", old + CRASH)
    assert detector.triggered


def test_anomaly_latches_until_the_recovery_share_is_back_above_the_ma():
    detector = AnomalyDetector(rule(mode="all", recovery_share=D(1)))
    detector.update("BTC", CRASH)
    detector.update("ETH", CRASH)
    detector.update("BTC", DIP)  # no longer anomalous, not recovered either
    detector.update("ETH", DIP)
    assert detector.triggered
    detector.update("BTC", CALM)
    assert detector.triggered  # half recovered, the rule wants all
    detector.update("ETH", CALM)
    assert not detector.triggered


def test_partial_recovery_share_clears_but_not_while_the_trigger_holds():
    detector = AnomalyDetector(rule(("A", "B", "C", "D"), mode="any", recovery_share=D("0.5")))
    detector.update("A", CRASH)
    assert detector.triggered
    detector.update("B", CALM)
    detector.update("C", CALM)  # half recovered, but A is still anomalous
    assert detector.triggered
    detector.update("A", DIP)
    assert not detector.triggered  # B and C: 2 of 4 >= 0.5


def test_too_few_candles_is_neither_anomalous_nor_recovered():
    detector = AnomalyDetector(rule(("BTC",), mode="any"))
    detector.update("BTC", CRASH[1:])  # window + 1 needed
    assert not detector.triggered
    detector.update("BTC", CRASH)
    detector.update("BTC", CALM[1:])  # too few: does not count as recovered
    assert detector.triggered
    detector.update("BTC", [])
    assert detector.triggered
    detector.update("BTC", CALM)
    assert not detector.triggered


def test_symbols_outside_the_basket_are_ignored():
    detector = AnomalyDetector(rule(("BTC",)))
    detector.update("DOGE", CRASH)
    assert not detector.triggered


def test_book_anomaly_reason_and_no_rule_means_no_anomaly():
    book = RiskBook(RiskLimits(anomaly=rule(("BTC",))))
    assert book.observe_candles("BTC", CRASH).reasons == ("anomaly",)
    assert not book.observe_candles("BTC", CALM).halted
    assert not RiskBook(RiskLimits()).observe_candles("BTC", CRASH).halted


def test_reasons_are_sorted_and_all_active_at_once():
    limits = RiskLimits(
        max_exposure_quote=D(10), latency_bound_ms=1.0, latency_window=1, anomaly=rule(("BTC",))
    )
    book = RiskBook(limits)
    book.report(rep(qty="1"))
    book.observe_latency(5)
    book.observe_candles("BTC", CRASH)
    state = book.trip("test")
    assert state.reasons == ("anomaly", "breaker", "exposure", "latency")
    assert state.halted


# -- properties ---------------------------------------------------------------------------------
SYMBOLS = st.sampled_from(["BTC", "ETH", "SOL"])
MONEY = st.integers(-10_000, 10_000).map(lambda n: D(n) / 100)
REPORTS = st.builds(
    ExposureReport,
    symbol=SYMBOLS,
    inventory_qty=MONEY,
    price=st.integers(0, 10_000).map(D),
    realized_pnl=MONEY,
    unrealized_pnl=MONEY,
    closed_pnls=st.lists(MONEY, max_size=3).map(tuple),
)
EVENTS = st.lists(
    st.one_of(
        REPORTS,
        st.tuples(st.just("forget"), SYMBOLS),
        st.tuples(st.just("latency"), st.floats(0, 500)),
        st.tuples(st.just("trip"), st.text(max_size=5)),
        st.just("reset"),
    ),
    max_size=40,
)
LIMITS = st.builds(
    RiskLimits,
    max_exposure_quote=st.none() | st.integers(1, 10**6).map(D),
    max_drawdown_quote=st.none() | st.integers(1, 10**4).map(D),
    max_consecutive_losses=st.none() | st.integers(1, 5),
    latency_bound_ms=st.none() | st.floats(1, 400),
    latency_window=st.integers(1, 5),
)


def apply(book, event):
    if isinstance(event, ExposureReport):
        return book.report(event)
    if event == "reset":
        return book.reset()
    kind, arg = event
    return {"forget": book.forget, "latency": book.observe_latency, "trip": book.trip}[kind](arg)


@given(LIMITS, EVENTS)
def test_state_matches_the_latest_reports(limits, events):
    book, latest, samples = RiskBook(limits), {}, []
    for event in events:
        state = apply(book, event)
        if isinstance(event, ExposureReport):
            latest[event.symbol] = event
        elif event[0] == "forget":
            latest.pop(event[1], None)
        elif event[0] == "latency":
            samples.append(event[1])
        assert state == book.state()
        assert state.exposure_quote == sum(abs(r.inventory_qty) * r.price for r in latest.values())
        assert state.total_pnl == sum(r.realized_pnl + r.unrealized_pnl for r in latest.values())
        assert state.halted == bool(state.reasons)
        assert list(state.reasons) == sorted(set(state.reasons))
        assert set(state.reasons) <= {"breaker", "exposure", "anomaly", "latency"}
        assert state.peak_pnl >= state.total_pnl
        recent = samples[-limits.latency_window :]
        assert state.latency_ms == (statistics.median(recent) if recent else None)


@given(LIMITS, EVENTS)
def test_a_tripped_breaker_only_clears_on_reset_and_survives_a_restart(limits, events):
    book = RiskBook(limits)
    for event in events:
        was_tripped = "breaker" in book.state().reasons
        state = apply(book, event)
        if was_tripped and event != "reset":
            assert "breaker" in state.reasons
        assert ("breaker" in state.reasons) == bool(state.breaker_reason)
        restored = RiskBook(limits, book.persisted()).state()
        assert restored.breaker_reason == state.breaker_reason
        assert (restored.peak_pnl, restored.losing_streak) == (state.peak_pnl, state.losing_streak)
        assert restored.total_pnl == state.total_pnl
