"""Routing of one shared exchange connection's streams to many symbols (DESIGN 6).

Owns: one `Mailbox` per symbol and the delivery promises:
- price ticks are conflated: only the newest pending tick is delivered (`conflated` counts the
  ones replaced);
- order updates are never reordered and never silently dropped: they queue in arrival order and
  go out in batches, with at most one delivery in flight per symbol (so a batch is processed
  before the next is sent);
- a slow or dead receiver delays only its own mailbox; its memory is bounded: when more than
  `max_updates` updates are pending, they are discarded and the next delivery carries
  `resync=True`, which makes the receiver reconcile with the exchange (REST gap-fill) before it
  goes on — the same recovery that runs after a stream reconnect, so nothing is lost;
- a failed delivery (receiver restarting) is retried with backoff and marked `resync`, its
  updates kept in front of newer ones;
- a tick the receiver has said cannot change its decision (its `QuietBox`, from the answer to
  the last delivery or pushed since) does not wake it: it waits, conflated, until a tick
  outside the box, an order update, a new box, or `hold_s` after the last delivery (so prices
  and tick ages seen by the receiver are never older than that).
Must not: import Ray or know what a receiver is; a receiver is any async callable (`Sink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mm.core.model import OrderReport, PriceTick
from mm.core.quiet import QuietBox
from mm.engine.backoff import jittered

log = logging.getLogger(__name__)

MAX_UPDATES = 10_000
MAX_BATCH = 500
HOLD_S = 0.5


@dataclass(frozen=True, slots=True)
class Delivery:
    """One call to a symbol's receiver: ordered updates, then the newest tick."""

    symbol: str
    seq: int  # delivery number of this mailbox, from 1
    updates: tuple[OrderReport, ...]
    tick: PriceTick | None
    resync: bool  # updates may be missing: reconcile before applying these
    tick_recv_ns: int = 0  # wall-clock ns when the connector received `tick`


Sink = Callable[[Delivery], Awaitable[object]]


class Mailbox:
    def __init__(
        self,
        symbol: str,
        sink: Sink,
        *,
        max_updates: int = MAX_UPDATES,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        hold_s: float = HOLD_S,
    ) -> None:
        """`hold_s`: the longest a tick is held back by the receiver's quiet box (0: never)."""
        self.symbol = symbol
        self.sink = sink
        self.max_updates = max_updates
        self.backoff_s = backoff_s
        self.hold_s = hold_s
        self.gate: QuietBox | None = None  # the receiver's, for its state after the last delivery
        self._tick: PriceTick | None = None
        self._tick_ns = 0
        self._updates: deque[OrderReport] = deque()
        self._resync = True  # a new route starts with a reconcile: updates before it are unknown
        self._ready = asyncio.Event()
        self.seq = 0
        self.delivered_ticks = 0
        self.delivered_updates = 0
        self.conflated = 0
        self.overflows = 0
        self.failures = 0
        self.last_delivery_ms = 0
        self.in_flight = False
        self.held = 0  # ticks that did not wake the receiver (inside its quiet box)
        self._last_sent = time.monotonic()

    # -- producer side (never awaits) --------------------------------------------------------
    def put_tick(self, tick: PriceTick, recv_ns: int) -> None:
        first = self._tick is None
        if not first:
            self.conflated += 1
        self._tick, self._tick_ns = tick, recv_ns
        due = self._tick_due()
        if not due:
            self.held += 1
        if due or first:  # a first held tick: the loop starts its `hold_s` timer
            self._ready.set()

    def _tick_due(self) -> bool:
        """The pending tick should go now: no box says it is quiet, or it has waited enough."""
        gate, tick = self.gate, self._tick
        return (
            gate is None
            or tick is None
            or not gate.holds(tick, time.time_ns() // 1_000_000)
            or time.monotonic() - self._last_sent >= self.hold_s
        )

    def set_gate(self, gate: QuietBox | None) -> None:
        """The receiver's quiet box for its current state (None: every tick may matter)."""
        self.gate = gate if self.hold_s > 0 else None
        if self._tick is not None and self._tick_due():
            self._ready.set()

    def put_update(self, report: OrderReport) -> None:
        if len(self._updates) >= self.max_updates:
            self._updates.clear()  # bounded memory; the receiver reconciles instead
            self._resync = True
            self.overflows += 1
            log.warning("%s: %d order updates pending; resyncing", self.symbol, self.max_updates)
        self._updates.append(report)
        self._ready.set()

    def request_resync(self) -> None:
        self._resync = True
        self._ready.set()

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    @property
    def pending_ticks(self) -> int:
        return int(self._tick is not None)

    # -- delivery loop -----------------------------------------------------------------------
    def _take(self) -> Delivery:
        count = min(len(self._updates), MAX_BATCH)
        updates = tuple(self._updates.popleft() for _ in range(count))
        tick, tick_ns = (self._tick, self._tick_ns) if len(self._updates) == 0 else (None, 0)
        if tick is not None:
            self._tick = None
        self.seq += 1
        delivery = Delivery(self.symbol, self.seq, updates, tick, self._resync, tick_ns)
        self._resync = False
        return delivery

    def _put_back(self, delivery: Delivery) -> None:
        """A failed delivery: its updates go back in front, its tick unless a newer one came."""
        self._updates.extendleft(reversed(delivery.updates))
        if delivery.tick is not None and self._tick is None:
            self._tick, self._tick_ns = delivery.tick, delivery.tick_recv_ns
        self._resync = True

    async def run(self) -> None:
        """Deliver until cancelled; one delivery in flight at a time."""
        failures_in_row = 0
        while True:
            if self._tick is not None:  # held back: it goes `hold_s` after the last delivery
                wait = self._last_sent + self.hold_s - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.0)):
                        await self._ready.wait()
            else:
                await self._ready.wait()
            self._ready.clear()
            while self._updates or self._resync or (self._tick is not None and self._tick_due()):
                delivery = self._take()
                self.in_flight = True
                self.gate = None  # the delivery changes the receiver; its answer says the new box
                try:
                    answer = await self.sink(delivery)
                except asyncio.CancelledError:
                    self._put_back(delivery)
                    raise
                except Exception as e:  # the receiver is down or restarting: retry, then resync
                    self._put_back(delivery)
                    self.failures += 1
                    failures_in_row += 1
                    log.warning("%s: delivery failed (%s); retrying", self.symbol, e)
                    await asyncio.sleep(jittered(self.backoff_s, failures_in_row))
                    continue
                finally:
                    self.in_flight = False
                failures_in_row = 0
                self._last_sent = time.monotonic()
                if isinstance(answer, QuietBox):
                    self.set_gate(answer)
                self.delivered_updates += len(delivery.updates)
                self.delivered_ticks += delivery.tick is not None
                self.last_delivery_ms = time.time_ns() // 1_000_000

    def stats(self) -> dict[str, int]:
        return {
            "seq": self.seq,
            "delivered_ticks": self.delivered_ticks,
            "delivered_updates": self.delivered_updates,
            "conflated": self.conflated,
            "held": self.held,
            "pending_updates": self.pending_updates,
            "pending_ticks": self.pending_ticks,
            "overflows": self.overflows,
            "failures": self.failures,
            "last_delivery_ms": self.last_delivery_ms,
        }


class Router:
    """Symbol -> mailbox, each with its own delivery task (so one symbol never waits for
    another). Events for symbols without a route are counted and ignored."""

    def __init__(self, *, max_updates: int = MAX_UPDATES, hold_s: float = HOLD_S) -> None:
        self.max_updates = max_updates
        self.hold_s = hold_s
        self._boxes: dict[str, Mailbox] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.ticks_in = 0
        self.updates_in = 0
        self.unrouted = 0

    @property
    def symbols(self) -> list[str]:
        return sorted(self._boxes)

    def add(self, symbol: str, sink: Sink) -> bool:
        """Route `symbol` to `sink` (idempotent: an existing route keeps its sink); True if new."""
        if symbol in self._boxes:
            return False
        box = Mailbox(symbol, sink, max_updates=self.max_updates, hold_s=self.hold_s)
        self._boxes[symbol] = box
        self._tasks[symbol] = asyncio.get_running_loop().create_task(
            box.run(), name=f"deliver-{symbol}"
        )
        return True

    async def remove(self, symbol: str) -> bool:
        """Stop routing `symbol` (idempotent); True if it was routed."""
        self._boxes.pop(symbol, None)
        task = self._tasks.pop(symbol, None)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    def tick(self, tick: PriceTick, recv_ns: int | None = None) -> None:
        self.ticks_in += 1
        box = self._boxes.get(tick.symbol)
        if box is None:
            self.unrouted += 1
            return
        box.put_tick(tick, time.time_ns() if recv_ns is None else recv_ns)

    def update(self, report: OrderReport) -> None:
        self.updates_in += 1
        box = self._boxes.get(report.symbol)
        if box is None:
            self.unrouted += 1
            return
        box.put_update(report)

    def resync_all(self) -> None:
        for box in self._boxes.values():
            box.request_resync()

    def mailbox(self, symbol: str) -> Mailbox | None:
        return self._boxes.get(symbol)

    def stats(self) -> dict[str, object]:
        boxes = {s: b.stats() for s, b in self._boxes.items()}
        return {
            "ticks_in": self.ticks_in,
            "updates_in": self.updates_in,
            "unrouted": self.unrouted,
            "ticks_delivered": sum(b["delivered_ticks"] for b in boxes.values()),
            "ticks_conflated": sum(b["conflated"] for b in boxes.values()),
            "ticks_held": sum(b["held"] for b in boxes.values()),
            "symbols": boxes,
        }

    async def close(self) -> None:
        for symbol in list(self._boxes):
            await self.remove(symbol)
