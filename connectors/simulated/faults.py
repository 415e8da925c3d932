"""Fault injection for the simulated exchange: random (seeded rates) and scripted (next N calls).

Owns: deciding whether a call or a stream message misbehaves. Must not: change exchange state.

REST faults happen *before* the call is processed (`rate_limit`, `unavailable`, `timeout`) or
*after* it was processed (`timeout_after_accept`: the order exists, the caller sees a timeout).
`reject` refuses an order. Stream faults act per delivered order update (`drop`, `duplicate`,
`reorder` with the next update) or break the stream (`disconnect`).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass

from mm.errors import ExchangeUnavailable, RateLimited, RequestTimeout

REST_KINDS = frozenset({"rate_limit", "unavailable", "timeout", "timeout_after_accept", "reject"})
STREAM_KINDS = frozenset({"drop", "duplicate", "reorder", "disconnect"})


@dataclass(frozen=True, slots=True)
class FaultConfig:
    latency_ms: float = 0.0
    reject_rate: float = 0.0
    timeout_after_accept_rate: float = 0.0
    rate_limit_rate: float = 0.0
    drop_update_rate: float = 0.0
    duplicate_update_rate: float = 0.0
    reorder_update_rate: float = 0.0
    disconnect_after_messages: int = 0  # 0 = never
    seed: int = 0


class Faults:
    def __init__(self, config: FaultConfig = FaultConfig()) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._script: dict[str, deque[str]] = defaultdict(deque)
        self.fired: Counter[str] = Counter()  # faults that happened, by kind (for tests/metrics)

    def inject(self, op: str, kind: str, times: int = 1) -> None:
        """Make the next `times` calls of `op` (e.g. "place_order", "order_update") misbehave."""
        if kind not in REST_KINDS | STREAM_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(REST_KINDS | STREAM_KINDS)}")
        self._script[op].extend([kind] * times)

    def _scripted(self, op: str, kinds: frozenset[str]) -> str | None:
        queue = self._script.get(op)
        if queue and queue[0] in kinds:
            return queue.popleft()
        return None

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def before_call(self, op: str) -> None:
        """Raise the fault, if any, that stops `op` before the venue processes it."""
        kind = self._scripted(op, frozenset({"rate_limit", "unavailable", "timeout"}))
        if kind is None and self._roll(self.config.rate_limit_rate):
            kind = "rate_limit"
        if kind is not None:
            self.fired[kind] += 1
        if kind == "rate_limit":
            raise RateLimited(f"{op}: simulated 429", retry_after_s=0.01)
        if kind == "unavailable":
            raise ExchangeUnavailable(f"{op}: simulated 503")
        if kind == "timeout":
            raise RequestTimeout(f"{op}: simulated timeout (not processed)")

    def reject(self, op: str) -> bool:
        hit = bool(self._scripted(op, frozenset({"reject"}))) or self._roll(self.config.reject_rate)
        self.fired["reject"] += hit
        return hit

    def timeout_after_accept(self, op: str) -> bool:
        hit = bool(self._scripted(op, frozenset({"timeout_after_accept"}))) or (
            op == "place_order" and self._roll(self.config.timeout_after_accept_rate)
        )
        self.fired["timeout_after_accept"] += hit
        return hit

    def stream_fault(self, op: str) -> str | None:
        """For one stream message: "drop", "duplicate", "reorder", "disconnect" or None."""
        kind = self._scripted(op, STREAM_KINDS)
        if kind is None and op == "order_update":
            c = self.config
            for rate, name in (
                (c.drop_update_rate, "drop"),
                (c.duplicate_update_rate, "duplicate"),
                (c.reorder_update_rate, "reorder"),
            ):
                if self._roll(rate):
                    kind = name
                    break
        if kind is not None:
            self.fired[kind] += 1
        return kind
