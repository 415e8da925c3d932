"""Risk rules: aggregate exposure cap, circuit breaker, latency guard, market-anomaly detector.

Owns: the decision whether new opening orders may be placed anywhere (DESIGN 6, "Risk"), folded
into one `RiskState` by `RiskBook` from exposure reports, latency samples and closed candles.
Closing orders are never blocked here. Must not: do IO, read a clock, log, or know about actors;
time arrives inside the inputs and the durable part of the state leaves as `persisted()` strings.

Which rules latch: a tripped breaker stays tripped until `reset()`, even if PnL recovers. The
exposure cap and the latency guard clear by themselves with hysteresis; the anomaly detector
clears when enough of its basket is back at or above the moving average.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from mm.core.model import ZERO, Candle

BREAKER = "breaker"
EXPOSURE = "exposure"
ANOMALY = "anomaly"
LATENCY = "latency"
MODES = ("all", "any")


def _decimal(name: str, value: object, *, allow_none: bool = True) -> None:
    """Require a finite positive Decimal (or None when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        allowed = "a Decimal > 0" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _ratio(name: str, value: object) -> None:
    """Require a number in (0, 1]."""
    ok = isinstance(value, Decimal | float | int) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


def _integer(name: str, value: object, minimum: int, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ExposureReport:
    """What one symbol tells the risk engine (sent every second or so)."""

    symbol: str
    inventory_qty: Decimal  # signed base qty held by the grid
    price: Decimal  # last price (0 if none yet)
    realized_pnl: Decimal  # cumulative, net of fees
    unrealized_pnl: Decimal
    closed_pnls: tuple[Decimal, ...] = ()  # round trips closed since last report, oldest first
    ts_ms: int = 0  # 0 = unknown; else round trips count only if newer than the last counted

    @property
    def exposure_quote(self) -> Decimal:
        return abs(self.inventory_qty) * self.price

    @property
    def pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """Price below its moving average with volume above k x its moving average, over a basket."""

    basket: tuple[str, ...]  # symbols watched (non-empty)
    window: int = 20  # candles in the moving averages (>= 2)
    volume_multiple: Decimal = Decimal(3)  # k: volume above k x MA(volume)
    mode: str = "all"  # "all": every basket symbol anomalous; "any": at least one
    recovery_share: Decimal = Decimal(1)  # clears when this share of the basket has close >= MA

    def __post_init__(self) -> None:
        if isinstance(self.basket, str) or not isinstance(self.basket, tuple | list):
            raise ValueError(f"anomaly.basket must be a list of symbols, got {self.basket!r}")
        object.__setattr__(self, "basket", tuple(self.basket))
        if not self.basket or not all(isinstance(s, str) and s for s in self.basket):
            raise ValueError(f"anomaly.basket must name at least one symbol, got {self.basket!r}")
        if len(set(self.basket)) != len(self.basket):
            raise ValueError(f"anomaly.basket lists a symbol twice: {self.basket!r}")
        _integer("anomaly.window", self.window, 2)
        _decimal("anomaly.volume_multiple", self.volume_multiple, allow_none=False)
        if self.mode not in MODES:
            raise ValueError(f"anomaly.mode must be one of {MODES}, got {self.mode!r}")
        _ratio("anomaly.recovery_share", self.recovery_share)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every risk limit; None switches a rule off."""

    max_exposure_quote: Decimal | None = None  # aggregate |inventory| notional; None = no cap
    exposure_resume_ratio: Decimal = Decimal("0.9")  # the cap lifts below cap * ratio
    max_drawdown_quote: Decimal | None = None  # trip when total PnL falls this far below its peak
    max_consecutive_losses: int | None = None  # trip after this many losing round trips in a row
    latency_bound_ms: float | None = None  # triggered while the median round trip exceeds this
    latency_window: int = 20  # round trips in the median
    latency_resume_ratio: float = 0.8  # clears when the median drops below bound * ratio
    anomaly: AnomalyRule | None = None

    def __post_init__(self) -> None:
        _decimal("max_exposure_quote", self.max_exposure_quote)
        _ratio("exposure_resume_ratio", self.exposure_resume_ratio)
        _decimal("max_drawdown_quote", self.max_drawdown_quote)
        _integer("max_consecutive_losses", self.max_consecutive_losses, 1, allow_none=True)
        bound = self.latency_bound_ms
        if bound is not None and (
            not isinstance(bound, float | int) or not math.isfinite(bound) or bound <= 0
        ):
            raise ValueError(f"latency_bound_ms must be a number > 0 or None, got {bound!r}")
        _integer("latency_window", self.latency_window, 1)
        _ratio("latency_resume_ratio", self.latency_resume_ratio)
        if self.anomaly is not None and not isinstance(self.anomaly, AnomalyRule):
            raise ValueError(f"anomaly must be an AnomalyRule or None, got {self.anomaly!r}")


@dataclass(frozen=True, slots=True)
class RiskState:
    """The verdict every symbol obeys: `halted` = no new opening orders (closes keep working)."""

    halted: bool
    reasons: tuple[str, ...] = ()  # sorted; each one of "anomaly", "breaker", "exposure", "latency"
    breaker_reason: str = ""  # "manual: <text>", "drawdown ...", "consecutive_losses ..."
    exposure_quote: Decimal = ZERO
    total_pnl: Decimal = ZERO
    peak_pnl: Decimal = ZERO
    losing_streak: int = 0
    latency_ms: float | None = None  # current median, None when no samples


class CircuitBreaker:
    """Manual trip/reset; trips by itself on drawdown from the PnL peak and on a losing streak.

    Once tripped it stays tripped, keeping the first reason, until `reset()`.
    """

    def __init__(
        self,
        max_drawdown_quote: Decimal | None = None,
        max_consecutive_losses: int | None = None,
        *,
        peak_pnl: Decimal = ZERO,
        losing_streak: int = 0,
    ) -> None:
        _decimal("max_drawdown_quote", max_drawdown_quote)
        _integer("max_consecutive_losses", max_consecutive_losses, 1, allow_none=True)
        self.max_drawdown_quote = max_drawdown_quote
        self.max_consecutive_losses = max_consecutive_losses
        self.peak_pnl = peak_pnl
        self.losing_streak = losing_streak
        self.tripped = False
        self.reason = ""

    def trip(self, reason: str) -> None:
        """Idempotent: tripping a tripped breaker keeps the first reason."""
        if not self.tripped:
            self.tripped, self.reason = True, reason

    def reset(self, total_pnl: Decimal) -> None:
        """Clear the trip and the losing streak; drawdown is measured from `total_pnl` again."""
        self.tripped, self.reason = False, ""
        self.losing_streak = 0
        self.peak_pnl = total_pnl

    def observe_pnl(self, total_pnl: Decimal) -> bool:
        """Raise the peak or check the drawdown from it. Returns whether the breaker is tripped."""
        self.peak_pnl = max(self.peak_pnl, total_pnl)
        drawdown = self.peak_pnl - total_pnl
        limit = self.max_drawdown_quote
        if limit is not None and drawdown >= limit:
            self.trip(f"drawdown {drawdown} >= {limit} (peak {self.peak_pnl}, now {total_pnl})")
        return self.tripped

    def observe_round_trips(self, pnls: Iterable[Decimal]) -> bool:
        """Count losing round trips (pnl < 0) in a row; pnl >= 0 resets the streak."""
        limit = self.max_consecutive_losses
        for pnl in pnls:
            self.losing_streak = self.losing_streak + 1 if pnl < 0 else 0
            if limit is not None and self.losing_streak >= limit:
                self.trip(f"consecutive_losses {self.losing_streak} >= {limit}")
        return self.tripped


class ExposureCap:
    """Blocks at or above the cap; lifts only once exposure is below cap * resume_ratio."""

    def __init__(self, cap: Decimal | None, resume_ratio: Decimal = Decimal("0.9")) -> None:
        _decimal("max_exposure_quote", cap)
        _ratio("exposure_resume_ratio", resume_ratio)
        self.cap = cap
        self.resume_ratio = resume_ratio
        self.blocked = False

    def update(self, total: Decimal) -> bool:
        if self.cap is None:
            return False
        limit = self.cap * self.resume_ratio if self.blocked else self.cap
        self.blocked = total >= limit
        return self.blocked


def _median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class LatencyGuard:
    """Triggered while the median of the last `window` round trips exceeds `bound_ms`; clears once
    it is below `bound_ms * resume_ratio`. Without a bound it only reports the median."""

    def __init__(self, bound_ms: float | None, window: int = 20, resume_ratio: float = 0.8) -> None:
        _integer("latency_window", window, 1)
        _ratio("latency_resume_ratio", resume_ratio)
        self.bound_ms = bound_ms
        self.resume_ratio = resume_ratio
        self.triggered = False
        self._samples: deque[float] = deque(maxlen=window)

    @property
    def median_ms(self) -> float | None:
        return _median(self._samples) if self._samples else None

    def observe(self, ms: float) -> bool:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"a round trip must be a finite number of ms >= 0, got {ms!r}")
        self._samples.append(float(ms))
        if self.bound_ms is None:
            return False
        median = _median(self._samples)
        if self.triggered:
            self.triggered = median >= self.bound_ms * self.resume_ratio
        else:
            self.triggered = median > self.bound_ms
        return self.triggered


class AnomalyDetector:
    """Latest candle of each basket symbol tested against the MAs of the `window` before it.

    A symbol is anomalous when close < MA(close) and volume > k x MA(volume), recovered when
    close >= MA(close); with fewer than window + 1 candles it is neither. The detector triggers
    per `rule.mode` and, once triggered, clears only when the trigger condition no longer holds
    and at least `recovery_share` of the basket is recovered.
    """

    def __init__(self, rule: AnomalyRule) -> None:
        self.rule = rule
        self.triggered = False
        self._verdicts: dict[str, tuple[bool, bool]] = {}  # symbol -> (anomalous, recovered)

    def update(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Idempotent for the same candles. Symbols outside the basket are ignored."""
        if symbol not in self.rule.basket:
            return
        self._verdicts[symbol] = self._assess(candles)
        verdicts = [self._verdicts.get(s, (False, False)) for s in self.rule.basket]
        anomalous = [a for a, _ in verdicts]
        fire = all(anomalous) if self.rule.mode == "all" else any(anomalous)
        if fire:
            self.triggered = True
        elif self.triggered:
            recovered = sum(1 for _, r in verdicts if r)
            self.triggered = recovered < self.rule.recovery_share * len(verdicts)

    def anomalous_symbols(self) -> tuple[str, ...]:
        return tuple(s for s in self.rule.basket if self._verdicts.get(s, (False, False))[0])

    def _assess(self, candles: Sequence[Candle]) -> tuple[bool, bool]:
        window = self.rule.window
        tail = list(candles)[-(window + 1) :]
        if len(tail) < window + 1:
            return False, False
        *prior, last = tail
        ma_close = sum((c.close for c in prior), ZERO) / window
        ma_volume = sum((c.volume for c in prior), ZERO) / window
        below = last.close < ma_close
        return below and last.volume > self.rule.volume_multiple * ma_volume, not below


class RiskBook:
    """Aggregates everything into one RiskState. Pure and deterministic.

    `saved` is what `persisted()` returned earlier: it restores the breaker (tripped, reason), the
    PnL peak, the losing streak, each symbol's last PnL, which stands in for that symbol until
    it reports again (so a restart does not read a partial total as a drawdown), and each
    symbol's last ts_ms (so a report counted just before a restart and sent again, because its
    answer was lost, is not counted twice).
    """

    def __init__(self, limits: RiskLimits, saved: Mapping[str, str] | None = None) -> None:
        self.limits = limits
        self._breaker = CircuitBreaker(limits.max_drawdown_quote, limits.max_consecutive_losses)
        self._cap = ExposureCap(limits.max_exposure_quote, limits.exposure_resume_ratio)
        self._latency = LatencyGuard(
            limits.latency_bound_ms, limits.latency_window, limits.latency_resume_ratio
        )
        self._anomaly = AnomalyDetector(limits.anomaly) if limits.anomaly else None
        self._reports: dict[str, ExposureReport] = {}
        self._saved_pnl: dict[str, Decimal] = {}
        self._last_ts: dict[str, int] = {}  # per symbol, kept across restarts (`persisted`)
        if saved:
            self._restore(saved)

    def report(self, report: ExposureReport) -> RiskState:
        """The report that arrived last sets the symbol's exposure and PnL. Its round trips
        are counted only when its nonzero ts_ms is newer than the symbol's last counted one, so
        a retried report counts them once, also when the first attempt was counted and saved
        just before a restart. (Exposure does not wait for a newer ts_ms: a symbol whose clock
        is behind the saved one, after a clock step or a move to another node, must not drop
        out of the exposure cap; its sender keeps its own ts_ms increasing.)"""
        self._reports[report.symbol] = report
        self._saved_pnl.pop(report.symbol, None)
        if not report.ts_ms or report.ts_ms > self._last_ts.get(report.symbol, 0):
            self._last_ts[report.symbol] = report.ts_ms
            self._breaker.observe_round_trips(report.closed_pnls)
        return self._refresh()

    def forget(self, symbol: str) -> RiskState:
        """Idempotent. The symbol leaves exposure and PnL; its PnL also leaves the peak, so the
        current drawdown is unchanged by the removal."""
        gone = self._reports.pop(symbol, None)
        self._last_ts.pop(symbol, None)
        pnl = gone.pnl if gone is not None else self._saved_pnl.pop(symbol, ZERO)
        self._breaker.peak_pnl -= pnl
        return self._refresh()

    def observe_latency(self, ms: float) -> RiskState:
        self._latency.observe(ms)
        return self.state()

    def observe_candles(self, symbol: str, candles: Sequence[Candle]) -> RiskState:
        """Idempotent: closed candles, oldest first. Ignored without an anomaly rule."""
        if self._anomaly is not None:
            self._anomaly.update(symbol, candles)
        return self.state()

    def trip(self, reason: str) -> RiskState:
        """Idempotent; an already tripped breaker keeps its first reason."""
        self._breaker.trip(f"manual: {reason}")
        return self.state()

    def reset(self) -> RiskState:
        """Idempotent: clears the breaker and the loss streak; the PnL peak := current total."""
        self._breaker.reset(self._total_pnl())
        return self._refresh()

    def state(self) -> RiskState:
        flags = {
            BREAKER: self._breaker.tripped,
            EXPOSURE: self._cap.blocked,
            ANOMALY: self._anomaly is not None and self._anomaly.triggered,
            LATENCY: self._latency.triggered,
        }
        reasons = tuple(sorted(name for name, on in flags.items() if on))
        return RiskState(
            halted=bool(reasons),
            reasons=reasons,
            breaker_reason=self._breaker.reason,
            exposure_quote=self._exposure(),
            total_pnl=self._total_pnl(),
            peak_pnl=self._breaker.peak_pnl,
            losing_streak=self._breaker.losing_streak,
            latency_ms=self._latency.median_ms,
        )

    def persisted(self) -> dict[str, str]:
        """Plain strings to store durably; feed them back as `saved`."""
        out = {
            "breaker_tripped": "true" if self._breaker.tripped else "false",
            "breaker_reason": self._breaker.reason,
            "peak_pnl": str(self._breaker.peak_pnl),
            "losing_streak": str(self._breaker.losing_streak),
        }
        pnls = self._saved_pnl | {s: r.pnl for s, r in self._reports.items()}
        out.update({f"pnl:{symbol}": str(pnl) for symbol, pnl in sorted(pnls.items())})
        out.update({f"ts:{symbol}": str(ts) for symbol, ts in sorted(self._last_ts.items()) if ts})
        return out

    def _exposure(self) -> Decimal:
        return sum((r.exposure_quote for r in self._reports.values()), ZERO)

    def _total_pnl(self) -> Decimal:
        reported = sum((r.pnl for r in self._reports.values()), ZERO)
        return reported + sum(self._saved_pnl.values(), ZERO)

    def _refresh(self) -> RiskState:
        self._breaker.observe_pnl(self._total_pnl())
        self._cap.update(self._exposure())
        return self.state()

    def _restore(self, saved: Mapping[str, str]) -> None:
        tripped = saved.get("breaker_tripped", "false")
        if tripped not in ("true", "false"):
            raise ValueError(f"saved breaker_tripped must be 'true' or 'false', got {tripped!r}")
        if tripped == "true":
            self._breaker.trip(saved.get("breaker_reason", "") or "restored")
        self._breaker.peak_pnl = _saved_decimal(saved, "peak_pnl")
        self._breaker.losing_streak = _saved_count(saved, "losing_streak")
        for key in saved:
            if key.startswith("pnl:"):
                self._saved_pnl[key.removeprefix("pnl:")] = _saved_decimal(saved, key)
            elif key.startswith("ts:"):
                self._last_ts[key.removeprefix("ts:")] = _saved_count(saved, key)


def _saved_count(saved: Mapping[str, str], key: str) -> int:
    text = saved.get(key, "0")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"saved {key} must be an integer >= 0, got {text!r}")
    return int(text)


def _saved_decimal(saved: Mapping[str, str], key: str) -> Decimal:
    text = saved.get(key, "0")
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        value = Decimal("NaN")
    if not value.is_finite():
        raise ValueError(f"saved {key} must be a finite decimal, got {text!r}")
    return value
