"""`ConnectorExchange` (a symbol actor's exchange port) over the local channel: calls go over the
socket while it is connected and by actor call otherwise, and every way a local call can fail
ends as the same `mm.errors` outcome an actor call would give (no Ray cluster needed: the actor
handle is a recorder; the real path runs in the Ray tests). A symbol's risk reports take the same
route: relayed over the channel, else by actor call, and one lost with the channel is sent again
unchanged."""

import asyncio
import uuid
from decimal import Decimal as D

import pytest

from mm.actors.connector import REPORT_RISK, ConnectorExchange
from mm.actors.symbol_manager import send_risk_report
from mm.core.model import OrderRequest, Side
from mm.core.risk import ExposureReport
from mm.engine.local_channel import LocalChannelServer, LocalLink, private_dir
from mm.errors import ExchangeUnavailable, PostOnlyRejected, RequestTimeout, TemporaryError
from tests.helpers import eventually, run

BTC = "BTCUSDT"
REQUEST = OrderRequest(BTC, "g1", Side.BUY, D("100"), D("1"), post_only=True)
REPORT = ExposureReport(BTC, D("0.5"), D("100"), D("-2"), D("1"), (D("-2"),), ts_ms=7)


class ActorHandle:
    """Stands in for the connector actor's handle: `handle.call.remote(...)` is recorded."""

    def __init__(self):
        self.call = self
        self.calls = []

    def remote(self, method, *args):
        self.calls.append(method)
        future = asyncio.get_running_loop().create_future()
        future.set_result(f"by actor call: {method}")
        return future


class RiskHandle:
    """Stands in for the risk actor's handle: `risk.report.remote(report)` is recorded."""

    def __init__(self):
        self.report = self
        self.reports = []

    def remote(self, report):
        self.reports.append(report)
        future = asyncio.get_running_loop().create_future()
        future.set_result("by actor call")
        return future


@pytest.fixture
def socket_path():
    path = private_dir() / f"test-{uuid.uuid4().hex[:12]}.sock"
    yield path
    path.unlink(missing_ok=True)


def scenario_with(socket_path, serve, body):
    async def scenario():
        server = LocalChannelServer(socket_path, serve=serve)
        await server.start()
        handle = ActorHandle()
        exchange = ConnectorExchange(handle)

        async def apply(delivery):
            return None

        exchange.link = LocalLink(BTC, apply)
        task = asyncio.create_task(exchange.link.run(str(socket_path)))
        await eventually(lambda: server.channel(BTC) is not None, what="connected")
        try:
            return await body(exchange, handle, server)
        finally:
            await server.close()
            await asyncio.wait_for(task, 5)

    return run(scenario())


def test_calls_go_over_the_link_while_connected_and_by_actor_call_after(socket_path):
    served = []

    async def serve(method, args):
        served.append(method)
        return [] if method == "fetch_open_orders" else None

    async def body(exchange, handle, server):
        assert await exchange.fetch_open_orders(BTC) == []
        await server.close()
        await eventually(lambda: not exchange.link.connected, what="the link to drop")
        return await exchange.fetch_open_orders(BTC), handle.calls

    answer, by_actor = scenario_with(socket_path, serve, body)
    assert served == ["fetch_open_orders"]
    assert answer == "by actor call: fetch_open_orders" and by_actor == ["fetch_open_orders"]


def test_a_venue_rejection_comes_back_as_itself(socket_path):
    async def serve(method, args):
        raise PostOnlyRejected("would take liquidity")

    async def body(exchange, handle, server):
        with pytest.raises(PostOnlyRejected, match="would take"):
            await exchange.place_order(REQUEST)
        return handle.calls

    assert scenario_with(socket_path, serve, body) == []


@pytest.mark.parametrize(
    ("method", "expected"),
    [("place_order", RequestTimeout), ("fetch_balances", ExchangeUnavailable)],
)
def test_a_foreign_error_in_the_connector_is_an_unknown_outcome(socket_path, method, expected):
    async def serve(method, args):
        raise KeyError("bug in the connector")

    async def body(exchange, handle, server):
        with pytest.raises(expected, match="KeyError"):
            await (
                exchange.place_order(REQUEST)
                if method == "place_order"
                else exchange.fetch_balances()
            )
        return handle.calls

    assert scenario_with(socket_path, serve, body) == []  # and never re-sent by actor call


def lost_with_the_connection(socket_path, method):
    """Call `method` over the link and close the connector while it is under way: (what the
    call raised or returned, the calls then made by actor call)."""
    arrived = asyncio.Event()

    async def serve(method, args):
        arrived.set()
        await asyncio.sleep(30)  # the connector dies first

    async def body(exchange, handle, server):
        pending = asyncio.create_task(
            exchange.place_order(REQUEST) if method == "place_order" else exchange.fetch_balances()
        )
        await asyncio.wait_for(arrived.wait(), 5)
        await server.close()
        try:
            outcome = await asyncio.wait_for(pending, 5)
        except Exception as e:
            outcome = e
        return outcome, handle.calls

    return scenario_with(socket_path, serve, body)


def test_a_state_change_lost_with_the_connection_is_maybe_done_never_resent(socket_path):
    outcome, by_actor = lost_with_the_connection(socket_path, "place_order")
    assert isinstance(outcome, RequestTimeout) and "local channel dropped" in str(outcome)
    assert by_actor == []


def test_a_read_lost_with_the_connection_is_asked_again_by_actor_call(socket_path):
    """A drain reads open orders while its route is cut: asking again is harmless."""
    outcome, by_actor = lost_with_the_connection(socket_path, "fetch_balances")
    assert outcome == "by actor call: fetch_balances" and by_actor == ["fetch_balances"]


def test_a_risk_report_goes_over_the_link_and_by_actor_call_when_there_is_none(socket_path):
    served = []

    async def serve(method, args):
        served.append((method, args))
        return "relayed"

    async def body(exchange, handle, server):
        risk = RiskHandle()
        relayed = await send_risk_report(exchange.link, risk, REPORT)
        direct = await send_risk_report(None, risk, REPORT)
        return relayed, direct, risk.reports

    relayed, direct, by_actor = scenario_with(socket_path, serve, body)
    assert served == [(REPORT_RISK, (REPORT,))] and relayed == "relayed"
    assert direct == "by actor call" and by_actor == [REPORT]


def test_a_risk_report_lost_with_the_channel_is_sent_again_unchanged_by_actor_call(socket_path):
    """The connector went away with the report (maybe relayed, maybe not): the same report,
    same ts_ms, goes to the risk actor, which counts a ts_ms once."""
    arrived = asyncio.Event()

    async def serve(method, args):
        arrived.set()
        await asyncio.Event().wait()  # the connector dies before it answers

    async def body(exchange, handle, server):
        risk = RiskHandle()
        sending = asyncio.create_task(send_risk_report(exchange.link, risk, REPORT))
        await asyncio.wait_for(arrived.wait(), 5)
        await server.close()
        return await asyncio.wait_for(sending, 5), risk.reports

    answer, by_actor = scenario_with(socket_path, serve, body)
    assert answer == "by actor call" and by_actor == [REPORT]
    assert by_actor[0] is REPORT  # not a fresh report: its round trips are not counted again


def test_a_risk_report_the_connector_does_not_answer_in_time_is_a_failed_report(socket_path):
    async def serve(method, args):
        await asyncio.Event().wait()

    async def body(exchange, handle, server):
        risk = RiskHandle()
        with pytest.raises(TemporaryError, match="no risk answer in time"):
            await send_risk_report(exchange.link, risk, REPORT, relay_timeout_s=0.2)
        return risk.reports

    assert scenario_with(socket_path, serve, body) == []  # not also sent by actor call
