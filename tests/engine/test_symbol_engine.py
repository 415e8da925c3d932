"""SymbolEngine protocol: journal before act, outcomes journaled, errors classified."""

from decimal import Decimal as D

import pytest

from mm.core.model import OrderStatus, PriceTick
from mm.engine.symbol_engine import EngineState
from mm.errors import AuthenticationError, ConfigError
from mm.store.journal import Journal
from tests.helpers import grid, make_rig, run


def statuses(rig):
    return sorted(r["status"] for r in rig.rows("orders"))


def test_orders_are_journaled_as_intent_before_the_venue_sees_them():
    seen = []

    def on_phase(phase):
        if phase == "intent_committed":
            intents = [r for r in rig.rows("orders") if r["status"] == "INTENT"]
            seen.append((len(intents), len(rig.sim.orders(rig.symbol))))

    async def scenario():
        await rig.engine.start()
        await rig.step("10000")

    rig = make_rig(on_phase=on_phase)
    run(scenario())
    assert seen[0] == (3, 0)  # three INTENT rows committed, nothing sent yet
    assert statuses(rig) == ["OPEN", "OPEN", "OPEN"]
    assert all(r["exchange_id"] for r in rig.rows("orders"))


def test_timeout_after_accept_is_resolved_by_client_id_without_a_second_order():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        rig.sim.faults.inject("place_order", "timeout_after_accept")
        await rig.step("10000")
        assert len(rig.sim.orders(rig.symbol)) == 3  # the retry hit DuplicateOrder and adopted
        assert statuses(rig) == ["OPEN", "OPEN", "OPEN"]

    run(scenario())


def test_unresolved_timeout_stays_unknown_until_reconcile_finds_the_order():
    async def scenario():
        rig = make_rig(engine_config={"send_attempts": 1})
        await rig.engine.start()
        rig.sim.faults.inject("place_order", "timeout_after_accept")
        await rig.step("10000")
        assert statuses(rig) == ["OPEN", "OPEN", "UNKNOWN"]
        unknown = [o for o in rig.engine.pm.live_orders() if o.status is OrderStatus.UNKNOWN]
        await rig.step("10010")  # an UNKNOWN slot is neither cancelled nor replaced
        assert len(rig.sim.orders(rig.symbol)) == 3
        await rig.engine.reconcile()
        assert rig.engine.pm.order(unknown[0].client_id).status is OrderStatus.OPEN
        assert statuses(rig) == ["OPEN", "OPEN", "OPEN"]

    run(scenario())


def test_rate_limits_are_retried_with_the_same_client_id():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        rig.sim.faults.inject("place_order", "rate_limit", times=2)
        await rig.step("10000")
        assert len(rig.sim.orders(rig.symbol)) == 3 and statuses(rig) == ["OPEN"] * 3

    run(scenario())


def test_an_order_that_never_reached_the_venue_is_placed_again_under_a_new_id():
    async def scenario():
        rig = make_rig(engine_config={"send_attempts": 2, "max_concurrency": 1})
        await rig.engine.start()
        rig.sim.faults.inject("place_order", "unavailable", times=2)
        await rig.step("10000")
        assert statuses(rig) == ["OPEN", "OPEN", "UNKNOWN"]
        lost = next(o for o in rig.engine.pm.live_orders() if o.status is OrderStatus.UNKNOWN)
        await rig.engine.reconcile()  # not on the venue: never placed
        assert rig.journal.order(lost.client_id).status is OrderStatus.REJECTED
        assert rig.journal.order(lost.client_id).reason == "never_placed"
        await rig.step("10000")
        replacement = rig.engine.pm.slot(lost.level).order
        assert replacement.client_id != lost.client_id
        assert replacement.status is OrderStatus.OPEN and len(rig.sim.orders(rig.symbol)) == 3

    run(scenario())


def test_post_only_rejection_is_recorded_and_never_becomes_a_taker_order():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        rig.sim.advance(rig.symbol, 985000, rig.clock.now_ms())  # venue at 9850, engine unaware
        await rig.engine.on_tick(PriceTick(rig.symbol, D("10000"), rig.clock.now_ms()))
        rejected = [r for r in rig.rows("orders") if r["status"] == "REJECTED"]
        assert [(r["level"], r["reason"]) for r in rejected] == [(-1, "post_only")]
        assert rig.engine.pm.slot(-1).post_only_rejects == 1
        assert rig.rows("fills") == []
        assert "BTC" not in rig.sim.account.balances()  # nothing was bought as a taker
        await rig.step("9850")  # next tick: priced from where the market really is
        assert -1 not in rig.live() and {-2, -3, -4} <= set(rig.live())

    run(scenario())


class LockedOut:
    """The simulated venue, except that the API key has lost its trading permission."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def place_order(self, request):
        raise AuthenticationError("API key has no trading permission")


def test_an_operational_error_halts_the_symbol():
    async def scenario():
        rig = make_rig()
        rig.engine.exchange = LockedOut(rig.sim)
        await rig.engine.start()
        await rig.step("10000")
        assert rig.engine.state is EngineState.HALTED
        assert "trading permission" in rig.engine.halt_reason
        await rig.step("9900")
        assert rig.sim.orders(rig.symbol) == []

    run(scenario())


def test_neutral_spot_without_base_inventory_is_refused_at_start():
    async def scenario():
        rig = make_rig(grid("neutral"))
        with pytest.raises(ConfigError, match="holds none"):
            await rig.engine.start()

    run(scenario())


def test_an_unlisted_symbol_is_a_config_error():
    async def scenario():
        rig = make_rig(symbol="NOPEUSDT")
        with pytest.raises(ConfigError, match="not listed"):
            await rig.engine.start()

    run(scenario())


def test_status_reports_the_numbers_a_dashboard_needs():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")
        return rig.engine.status()

    status = run(scenario())
    assert status["state"] == "QUOTING" and status["anchor"] == "10000.00"
    assert D(status["inventory_qty"]) == D("0.01") and status["open_orders"] == 4
    assert status["fills"] == 1


def test_the_log_is_checkpointed_between_events_never_between_intents_and_orders(tmp_path):
    seen = []

    def on_phase(phase):
        seen.append((phase, rig.journal.checkpoints))

    async def scenario():
        await rig.engine.start()
        for price in ("10000", "9900", "9800", "9900", "10000", "10100"):
            await rig.step(price)
        tick = PriceTick(rig.symbol, D("10200"), rig.clock.now_ms())
        await rig.engine.on_events([], tick)  # the path of pushed deliveries

    journal = Journal(tmp_path / "j.db", checkpoint_every=2)
    rig = make_rig(journal=journal, on_phase=on_phase)
    run(scenario())
    assert journal.checkpoints >= 2
    acts = [i for i, (phase, _) in enumerate(seen) if phase == "intent_commit"]
    assert acts
    for i in acts:  # from the intents to the orders sent, no checkpoint ran
        sent = next(j for j in range(i, len(seen)) if seen[j][0] == "sent")
        assert {count for _, count in seen[i : sent + 1]} == {seen[i][1]}
