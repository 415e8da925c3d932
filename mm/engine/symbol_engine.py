"""SymbolEngine: one symbol's event -> core -> journal -> exchange -> journal loop (DESIGN 4).

Owns: the order of effects that makes a crash harmless. For every event it
1. applies it to the PositionManager and asks the GridStrategy for commands (pure);
2. journals the resulting state, fills and every new order as INTENT in ONE transaction;
3. sends the commands (bounded concurrency, retries with the same client id);
4. journals each outcome (OPEN / REJECTED with reason / UNKNOWN).
Startup is recovery (`mm.engine.reconcile`): nothing is quoted before it succeeds.

Must not: import ray, ccxt or grpc, or know which exchange/driver it runs under — the backtest,
the tests and the live actor all drive this same class.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from mm.core.commands import CancelAll, CancelOrder, Command, PlaceOrder
from mm.core.grid import GridMode, GridParams, GridStrategy
from mm.core.model import (
    ZERO,
    MarketRules,
    MarketType,
    OrderReport,
    OrderRequest,
    OrderStatus,
    PriceTick,
)
from mm.core.position import PositionManager, SlotOrder
from mm.core.quiet import QuietBox
from mm.core.rounding import snap_price
from mm.engine import reconcile
from mm.errors import (
    ConfigError,
    DuplicateOrder,
    Halted,
    OperationalError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    ReconcileMismatch,
    TemporaryError,
)
from mm.ports import Clock, Exchange
from mm.store.journal import Journal, totals_to_text

log = logging.getLogger(__name__)


class EngineState(enum.Enum):
    CREATED = "CREATED"
    RECOVERING = "RECOVERING"
    QUOTING = "QUOTING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class EngineConfig:
    symbol: str
    params: GridParams
    max_concurrency: int = 4
    send_attempts: int = 3
    retry_base_s: float = 0.05
    reconcile_tolerance_qty: Decimal = ZERO
    consistency_window_ms: int = 0
    spot_base_baseline: Decimal | None = None


Phase = Callable[[str], None]
SETTLE_ROUNDS = 3


def _no_phase(_: str) -> None:
    return None


def _nominal(
    command: PlaceOrder | CancelOrder, report: OrderReport, before: SlotOrder | None
) -> bool:
    """Did the command have exactly its intended effect (no fill, no reject)?"""
    filled_before = before.filled_qty if before is not None else ZERO
    if report.filled_qty != filled_before:
        return False
    wanted = OrderStatus.OPEN if isinstance(command, PlaceOrder) else OrderStatus.CANCELED
    return report.status is wanted


class SymbolEngine:
    def __init__(
        self,
        config: EngineConfig,
        exchange: Exchange,
        journal: Journal,
        clock: Clock,
        *,
        on_phase: Phase = _no_phase,
    ) -> None:
        self.config = config
        self.symbol = config.symbol
        self.exchange = exchange
        self.journal = journal
        self.clock = clock
        self.on_phase = on_phase
        self.state = EngineState.CREATED
        self.halt_reason = ""
        self.rules: MarketRules | None = None
        self.pm = PositionManager(self.symbol)
        self.strategy: GridStrategy | None = None
        self.last_tick: PriceTick | None = None
        self.risk_halted = False
        self.paused = False  # operator pause: no decisions (fills are still journaled)
        self.halt_kind = ""  # "reconcile": cleared by a later reconcile that agrees
        self._meta_pending: dict[str, str] = {}
        self._journaled: tuple[int, object] = (-1, None)  # next generation, totals last written
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(config.max_concurrency)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the journal and reconcile with the exchange; quote only if that succeeds."""
        async with self._lock:
            self.state = EngineState.RECOVERING
            rules = await self.exchange.load_markets([self.symbol])
            self.rules = rules[self.symbol]
            await self._check_can_sell()
            await self._recover(load=True)

    async def _check_can_sell(self) -> None:
        """A Neutral grid on spot sells base it must already hold: refuse to start without it."""
        rules = self.rules
        assert rules is not None
        if (
            self.config.params.mode is not GridMode.NEUTRAL
            or rules.market_type is not MarketType.SPOT
        ):
            return
        held = (await self.exchange.fetch_balances()).get(rules.base)
        if held is None or held.total <= 0:
            raise ConfigError(
                f"grid.mode = 'neutral' on spot {self.symbol} sells {rules.base} the account must "
                f"already hold, but it holds none; use mode 'long' or the perpetual market"
            )

    async def reconcile(self) -> None:
        """Periodic / after-reconnect recovery against the exchange (journal stays loaded)."""
        async with self._lock:
            if self.rules is not None:
                await self._recover(load=False)

    async def _recover(self, *, load: bool) -> None:
        try:
            await reconcile.recover(self, load=load)
        except ReconcileMismatch as e:
            self.halt(str(e), kind="reconcile")
            return
        except OperationalError as e:
            self.halt(str(e))
            return
        if self.state is not EngineState.HALTED:
            self.state = EngineState.QUOTING
        elif self.halt_kind == "reconcile":
            log.warning("%s: journal and exchange agree again; resuming", self.symbol)
            self.state, self.halt_reason, self.halt_kind = EngineState.QUOTING, "", ""
        if self.strategy is not None:
            self.strategy.invalidate()

    def halt(self, reason: str, *, kind: str = "operational") -> None:
        """Stop sending orders for this symbol (orders resting on the venue stay). A halt of kind
        "reconcile" lifts when a later reconcile finds journal and exchange in agreement; any
        other needs a restart."""
        log.error("halting %s: %s", self.symbol, reason)
        self.state = EngineState.HALTED
        self.halt_reason = reason
        self.halt_kind = kind

    def set_risk_halted(self, halted: bool) -> None:
        """Global risk state: when True no opening orders are placed and live ones are cancelled."""
        self.risk_halted = halted

    def establish_anchor(self, price: Decimal) -> None:
        """Create the strategy at `price` snapped to tick; persisted once, never moved."""
        assert self.rules is not None
        anchor = snap_price(price, self.rules)
        self.strategy = GridStrategy(self.config.params, self.rules, anchor)
        self._meta_pending["anchor"] = str(anchor)  # committed with the next change set

    # -- events ------------------------------------------------------------------------------
    async def on_tick(self, tick: PriceTick) -> None:
        async with self._lock:
            self.last_tick = tick
            if self.state is not EngineState.QUOTING:
                return
            if self.strategy is None:
                self.establish_anchor(tick.price)  # the first tick a symbol ever sees
            await self._decide_and_act()
            self.journal.checkpoint_if_due()

    def apply(self, report: OrderReport) -> None:
        """Apply an exchange report, from a stream, a send or a reconcile. A fill it carries is
        now in memory but not yet journaled (phase `fill_received`); the caller commits."""
        if self.pm.apply_report(report) is not None:
            self.on_phase("fill_received")

    def note_price(self, tick: PriceTick) -> None:
        """Record the current price without deciding (a backtest does this before delivering the
        order reports of the same path point, so decisions on them see that point's price)."""
        self.last_tick = tick

    async def on_order_report(self, report: OrderReport) -> None:
        async with self._lock:
            self.apply(report)
            self._commit(durable=False)  # the exchange can tell it again
            if self.state is EngineState.QUOTING and self.last_tick is not None:
                await self._decide_and_act()
            self.journal.checkpoint_if_due()

    async def on_events(self, reports: Sequence[OrderReport], tick: PriceTick | None) -> None:
        """Order reports and the newest tick as one event (a pushed delivery): apply them all,
        then decide once on the result. The reports are journaled in the same transaction as
        the decision's intents, so the first order goes out after one commit, not one per
        report plus one for the intents; without a decision they are committed on their own."""
        async with self._lock:
            try:
                for report in reports:
                    self.apply(report)
                if tick is not None:
                    self.last_tick = tick
                if self.state is not EngineState.QUOTING or self.last_tick is None:
                    return
                if self.strategy is None:
                    if tick is None:
                        return  # the anchor comes from a tick, as in `on_tick`
                    self.establish_anchor(tick.price)
                await self._decide_and_act()
            finally:
                self._commit(durable=False)  # reports without a decision, or its outcomes
                self.journal.checkpoint_if_due()  # between events: no order waits for it

    async def execute(self, commands: Sequence[Command]) -> None:
        """Carry out commands from outside the strategy (e.g. CancelAll to drain a symbol)."""
        async with self._lock:
            await self._act(list(commands))

    def quiet_box(self) -> QuietBox | None:
        """The ticks that cannot change what this engine would do now (so nobody needs to wake
        it for them), or None when any tick might: not quoting, paused, busy (an event is under
        way), or the last decision was not settled."""
        tick, strategy = self.last_tick, self.strategy
        if (
            tick is None
            or strategy is None
            or self.state is not EngineState.QUOTING
            or self.paused
            or self._lock.locked()
        ):
            return None
        return strategy.quiet_box(
            self.pm.snapshot(),
            tick.price,
            now_ms=self.clock.now_ms(),
            risk_halted=self.risk_halted,
            bid=tick.bid,
            ask=tick.ask,
        )

    # -- the protocol ------------------------------------------------------------------------
    async def _decide_and_act(self) -> None:
        """Decide and act until the strategy is satisfied (a confirmed cancel frees room for the
        replacement at once), at most `SETTLE_ROUNDS` rounds per event, and only while every
        outcome is the nominal one (a post-only reject is re-priced on the next tick)."""
        assert self.strategy is not None and self.last_tick is not None
        tick = self.last_tick
        for _ in range(SETTLE_ROUNDS):
            if self.state is not EngineState.QUOTING or self.paused:
                return
            commands = self.strategy.decide(
                self.pm.snapshot(),
                tick.price,
                now_ms=self.clock.now_ms(),
                risk_halted=self.risk_halted,
                bid=tick.bid,
                ask=tick.ask,
            )
            if not commands:
                return
            if not await self._act(commands):
                return  # a reject, fill or unknown outcome: the next event decides afresh
            self.strategy.settled(self.pm.snapshot(), self.clock.now_ms())

    def _commit(self, *, durable: bool = True) -> None:
        """Journal everything the position manager changed (and pending meta) in one transaction.
        `durable=False` for outcomes and reports (what the exchange can tell again): they skip
        their own fsync and become durable with the next intents, which are always durable."""
        changes = self.pm.changes  # cleared only once written: a failed write loses nothing
        meta = dict(self._meta_pending)
        if self.pm.next_generation != self._journaled[0]:
            meta["next_generation"] = str(self.pm.next_generation)
        if self.pm.totals is not self._journaled[1]:
            meta["totals"] = totals_to_text(self.pm.totals)
        if changes or meta:
            # a closed round trip is reported to the risk engine from the journal: once counted
            # there it must not be lost and found again (counted twice), so it is on disk first
            durable = durable or any(f.closed_round_trip for f in changes.fills)
            self.journal.commit(self.symbol, changes, meta, durable=durable)
            self.pm.clear_changes()
            self._meta_pending = {}
            self._journaled = (self.pm.next_generation, self.pm.totals)

    async def _act(self, commands: list[Command]) -> bool:
        """Journal, send, journal outcomes. True when every outcome was the nominal one."""
        if self.state is EngineState.HALTED and any(isinstance(c, PlaceOrder) for c in commands):
            raise Halted(f"{self.symbol} is halted: {self.halt_reason}")
        now = self.clock.now_ms()
        expanded: list[PlaceOrder | CancelOrder] = []
        for command in commands:
            if isinstance(command, CancelAll):
                expanded += [
                    CancelOrder(self.symbol, o.client_id, o.level, command.reason)
                    for o in self.pm.live_orders()
                ]
            else:
                expanded.append(command)
        for command in expanded:  # 2. journal before acting
            if isinstance(command, PlaceOrder):
                self.pm.record_intent(command, now)
            else:
                self.pm.record_cancel_requested(command.client_id, now)
        self.on_phase("intent_commit")
        self._commit()
        self.on_phase("intent_committed")
        if len(expanded) == 1:  # 3. act (no task per command when there is only one)
            outcomes = [await self._send(expanded[0])]
        else:
            outcomes = await asyncio.gather(*(self._send(c) for c in expanded))
        self.on_phase("sent")
        nominal = True
        for command, report in zip(expanded, outcomes, strict=True):  # 4. journal the outcomes
            if report is None:
                nominal = False
                continue
            before = self.pm.order(command.client_id)
            nominal = nominal and _nominal(command, report, before)
            self.apply(report)
        self._commit(durable=False)  # an outcome lost to a power cut is looked up again
        self.on_phase("outcome_committed")
        return nominal

    async def _send(self, command: PlaceOrder | CancelOrder) -> OrderReport | None:
        async with self._sem:
            if isinstance(command, PlaceOrder):
                return await self._place(command)
            return await self._cancel(command)

    async def _retrying(self, call: Callable[[], object]) -> object:
        """Run `call`, retrying temporary errors with exponential backoff; re-raise the last."""
        for attempt in range(self.config.send_attempts):
            try:
                return await call()  # type: ignore[misc]
            except TemporaryError as e:
                if attempt + 1 == self.config.send_attempts:
                    raise
                delay = self.config.retry_base_s * (2**attempt)
                if isinstance(e, RateLimited) and e.retry_after_s:
                    delay = max(delay, e.retry_after_s)
                await self.clock.sleep(delay)
        raise AssertionError("unreachable")

    def _report(self, order: SlotOrder, status: OrderStatus, reason: str) -> OrderReport:
        return OrderReport(
            symbol=self.symbol,
            client_id=order.client_id,
            side=order.side,
            price=order.price,
            qty=order.qty,
            status=status,
            filled_qty=order.filled_qty,
            avg_price=order.avg_price,
            fee=order.fee,
            ts_ms=self.clock.now_ms(),
            reason=reason,
        )

    async def _place(self, command: PlaceOrder) -> OrderReport | None:
        request = OrderRequest(
            command.symbol,
            command.client_id,
            command.side,
            command.price,
            command.qty,
            command.post_only,
            command.reduce_only,
        )
        order = self.pm.order(command.client_id)
        assert order is not None
        try:
            return await self._retrying(lambda: self.exchange.place_order(request))  # type: ignore[return-value]
        except DuplicateOrder:
            return await self._lookup(command.client_id)  # an earlier attempt got through
        except OrderRejected as e:
            log.warning("%s %s rejected: %s", self.symbol, command.client_id, e)
            return self._report(order, OrderStatus.REJECTED, e.reason)
        except TemporaryError as e:
            log.warning("%s %s outcome unknown: %s", self.symbol, command.client_id, e)
            return self._report(order, OrderStatus.UNKNOWN, "timeout")
        except OperationalError as e:
            self.halt(f"placing {command.client_id}: {e}")
            return self._report(order, OrderStatus.UNKNOWN, "halted")

    async def _cancel(self, command: CancelOrder) -> OrderReport | None:
        try:
            call = lambda: self.exchange.cancel_order(self.symbol, command.client_id)  # noqa: E731
            return await self._retrying(call)  # type: ignore[return-value]
        except OrderNotFound:
            return await self._lookup(command.client_id)
        except TemporaryError as e:
            log.warning("%s cancel %s failed: %s", self.symbol, command.client_id, e)
            self.pm.record_cancel_requested(command.client_id, self.clock.now_ms(), False)
            return None  # the strategy asks again on a later tick
        except OperationalError as e:
            self.halt(f"cancelling {command.client_id}: {e}")
            return None

    async def _lookup(self, client_id: str) -> OrderReport | None:
        try:
            return await self._retrying(lambda: self.exchange.fetch_order(self.symbol, client_id))  # type: ignore[return-value]
        except (OrderNotFound, TemporaryError) as e:
            log.warning("%s lookup of %s failed: %s", self.symbol, client_id, e)
            order = self.pm.order(client_id)
            if order is not None and order.status is OrderStatus.INTENT:
                return self._report(order, OrderStatus.UNKNOWN, "lookup_failed")
            return None

    # -- views -------------------------------------------------------------------------------
    def unrealized_pnl(self) -> Decimal:
        """Inventory marked at the last price, net of the opening fees it carries."""
        if self.last_tick is None:
            return ZERO
        price = self.last_tick.price
        return sum(
            (
                (price - s.entry_price) * s.inventory_qty - s.open_fees
                for s in self.pm.snapshot().slots.values()
            ),
            ZERO,
        )

    def status(self) -> dict[str, object]:
        snap = self.pm.snapshot()
        price = self.last_tick.price if self.last_tick else None
        unrealized = self.unrealized_pnl()
        return {
            "symbol": self.symbol,
            "state": self.state.value,
            "halt_reason": self.halt_reason,
            "risk_halted": self.risk_halted,
            "anchor": str(self.strategy.anchor) if self.strategy else None,
            "last_price": str(price) if price is not None else None,
            "inventory_qty": str(snap.inventory_qty),
            "open_orders": len(snap.live_orders()),
            "realized_pnl": str(snap.totals.realized_pnl),
            "unrealized_pnl": str(unrealized),
            "fees": str(snap.totals.fees),
            "fills": snap.totals.fill_count,
            "round_trips": snap.totals.round_trips,
        }
