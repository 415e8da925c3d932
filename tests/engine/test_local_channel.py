"""The local channel over real Unix sockets: a send returns only once the receiver applied the
delivery, a slow receiver is conflated by the mailbox (not queued in the socket), a receiver that
goes away fails the send and the mailbox re-sends its updates (nothing lost), the newest receiver
of a symbol wins, the socket lives in a directory only this user can open; exchange calls the
other way are matched by id, bring errors back as themselves, work from inside a delivery, and
say whether a call lost with the connection may have happened."""

import asyncio
import os
import pickle
import stat
import uuid
from decimal import Decimal as D

import pytest

from mm.core.model import OrderReport, OrderStatus, PriceTick, Side
from mm.core.quiet import ANY, QuietBox
from mm.engine import local_channel
from mm.engine.local_channel import (
    ChannelClosed,
    DeliveryRefused,
    LocalChannelServer,
    LocalLink,
    box_text,
    encode,
    parse_box,
    private_dir,
    read_frame,
    sweep,
)
from mm.engine.router import Delivery, Router
from mm.errors import ExchangeUnavailable, RateLimited
from tests.helpers import eventually, run

BTC = "BTCUSDT"


def tick(price, bid=None, ask=None):
    return PriceTick(BTC, D(price), 1_700_000_000_123, bid and D(bid), ask and D(ask))


def update(n):
    return OrderReport(BTC, f"c{n}", Side.BUY, D("100"), D("1"), OrderStatus.OPEN, ts_ms=n)


def delivery(price="100", seq=1, updates=(), resync=False, recv_ns=7):
    return Delivery(BTC, seq, tuple(updates), tick(price) if price else None, resync, recv_ns)


@pytest.fixture
def socket_path():
    path = private_dir() / f"test-{uuid.uuid4().hex[:12]}.sock"
    yield path
    path.unlink(missing_ok=True)


class Receiver:
    """A `LocalLink` for BTC that records each delivery it applies; waits on `gate`."""

    def __init__(self, path, *, delay_s=0.0):
        self.got = []
        self.entered = 0  # deliveries that reached `apply` (applied or still at the gate)
        self.delay_s = delay_s
        self.gate = asyncio.Event()
        self.gate.set()
        self.link = LocalLink(BTC, self.apply)
        self.task = asyncio.create_task(self.link.run(str(path)))

    async def apply(self, d):
        self.entered += 1
        await self.gate.wait()
        await asyncio.sleep(self.delay_s)
        self.got.append(d)

    @property
    def prices(self):
        return [d.tick.price for d in self.got if d.tick is not None]

    @property
    def updates(self):
        return [u.client_id for d in self.got for u in d.updates]


async def connected(server, previous=None):
    await eventually(
        lambda: (c := server.channel(BTC)) is not None and c is not previous,
        what="the receiver's hello",
    )
    return server.channel(BTC)


async def started(path):
    server = LocalChannelServer(path)
    await server.start()
    return server


async def in_flight(socket_path, sent=None):
    """A connector with one delivery in flight at a receiver that has not applied it yet:
    (server, receiver, channel, the send task)."""
    server = await started(socket_path)
    receiver = Receiver(socket_path)
    receiver.gate.clear()
    channel = await connected(server)
    send = asyncio.create_task(channel.send(sent or delivery()))
    await eventually(lambda: receiver.entered == 1, what="the delivery at the receiver")
    return server, receiver, channel, send


def test_deliveries_survive_the_wire_exactly():
    async def scenario():
        sent = [
            delivery("64123.45", updates=[update(1), update(2)], resync=True),
            Delivery(BTC, 2, (), PriceTick(BTC, D("0.00001234"), 5, D("1E-8"), D("2E-8")), False),
            delivery(None, seq=3, updates=[update(3)]),
        ]
        reader = asyncio.StreamReader()
        for d in sent:
            reader.feed_data(encode(d))
        reader.feed_eof()
        assert [encode(d)[4:5] for d in sent] == [b"P", b"T", b"P"]  # a lone tick is text
        assert [await read_frame(reader) for _ in sent] == sent
        assert await read_frame(reader) is None  # a clean end

    run(scenario())


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"\x00\x00", "inside a frame header"),
        (b"\x00\x00\x00\x00", "frame of 0 bytes"),
        (b"\xff\xff\xff\xff", "frame of"),
        (b"\x00\x00\x00\x10abc", "inside a frame"),
        (encode(delivery())[:10], "inside a frame"),
        (b"\x00\x00\x00\x02Xy", "unknown frame kind"),
        (b"\x00\x00\x00\x05Tjunk", "bad tick frame"),
        (b"\x00\x00\x00\x13TBTCUSDT 1 x - - 1 2", "bad tick frame"),
        (b"\x00\x00\x00\x03T\xff\xfe", "bad tick frame"),
    ],
)
def test_garbage_on_the_wire_is_an_error_not_a_delivery(wire, error):
    async def scenario():
        reader = asyncio.StreamReader()
        reader.feed_data(wire)
        reader.feed_eof()
        with pytest.raises(ValueError, match=error):
            await read_frame(reader)

    run(scenario())


def test_a_frame_that_is_not_a_delivery_is_refused():
    async def scenario():
        reader = asyncio.StreamReader()
        body = b"P" + pickle.dumps({"symbol": BTC})
        reader.feed_data(len(body).to_bytes(4, "big") + body)
        reader.feed_eof()
        with pytest.raises(ValueError, match="not a Delivery"):
            await read_frame(reader)

    run(scenario())


def test_a_send_returns_only_after_the_receiver_applied_the_delivery(socket_path):
    async def scenario():
        sent = delivery("100.5", updates=[update(1)])
        server, receiver, channel, send = await in_flight(socket_path, sent)
        assert not send.done() and receiver.got == []  # written, not yet applied
        receiver.gate.set()
        await asyncio.wait_for(send, 5)
        assert receiver.got == [sent]
        assert channel.sent == 1
        await server.close()
        await asyncio.wait_for(receiver.task, 5)  # the receiver returns when the connector goes
        assert not socket_path.exists()

    run(scenario())


def test_the_socket_is_private_to_this_user(socket_path):
    async def scenario():
        server = await started(socket_path)
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
        await server.close()

    run(scenario())


def test_a_shared_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(local_channel.tempfile, "gettempdir", lambda: str(tmp_path))
    assert private_dir() == tmp_path / f"opensqt-{os.getuid()}"
    (tmp_path / f"opensqt-{os.getuid()}").chmod(0o755)
    with pytest.raises(PermissionError, match="open to other users"):
        private_dir()


def mailbox_over(server, router):
    """Route BTC through the channel, as the connector actor's sink does."""

    async def sink(d):
        await server.channel(BTC).send(d)

    router.add(BTC, sink)
    return router.mailbox(BTC)


def test_a_slow_receiver_is_conflated_by_the_mailbox_not_queued_in_the_socket(socket_path):
    async def scenario():
        server = await started(socket_path)
        receiver = Receiver(socket_path, delay_s=0.2)
        await connected(server)
        router = Router()
        box = mailbox_over(server, router)
        for n in range(100):
            router.tick(tick(100 + n), recv_ns=n)
            assert box.pending_ticks <= 1
            await asyncio.sleep(0.005)
        await eventually(lambda: box.pending_ticks == 0 and not box.in_flight, what="drained")
        prices = receiver.prices
        assert len(prices) < 10  # ~0.5 s of ticks at 0.2 s per application
        assert prices[-1] == D(199)  # the newest always arrives
        assert prices == sorted(prices)  # never an older tick after a newer one
        assert box.conflated == 100 - len(prices)
        assert receiver.got[0].resync  # a new route starts with a reconcile
        await server.close()
        await router.close()

    run(scenario())


def test_updates_in_flight_when_the_receiver_dies_are_sent_again_to_its_successor(socket_path):
    async def scenario():
        server = await started(socket_path)
        first = Receiver(socket_path)
        channel = await connected(server)
        router = Router()
        box = mailbox_over(server, router)
        router.tick(tick("100"))
        await eventually(lambda: box.seq == 1 and not box.in_flight, what="the first delivery")
        first.gate.clear()
        router.update(update(1))
        router.update(update(2))
        await eventually(lambda: box.in_flight, what="the updates in flight")
        first.task.cancel()  # the actor process dies before it applied them
        second = Receiver(socket_path)
        await connected(server, previous=channel)
        router.update(update(3))
        await eventually(lambda: second.updates == ["c1", "c2", "c3"], what="the re-send")
        assert first.updates == []
        assert second.got[0].resync  # what died with the first may be missing: reconcile
        assert box.failures >= 1
        await server.close()
        await router.close()

    run(scenario())


def test_a_receiver_that_goes_away_fails_the_send_and_the_channel(socket_path):
    async def scenario():
        server, receiver, channel, send = await in_flight(socket_path)
        receiver.task.cancel()  # the actor process dies mid-application
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(send, 5)
        await eventually(lambda: server.channel(BTC) is None, what="channel dropped")
        with pytest.raises(ChannelClosed):
            await channel.send(delivery())
        await server.close()

    run(scenario())


def test_the_newest_receiver_of_a_symbol_replaces_the_old_one(socket_path):
    async def scenario():
        server = await started(socket_path)
        old = Receiver(socket_path)
        first = await connected(server)
        new = Receiver(socket_path)
        second = await connected(server, previous=first)
        assert first.closed
        await asyncio.wait_for(old.task, 5)  # the old receiver's connection was closed
        await second.send(delivery())
        assert new.got == [delivery()] and old.got == []
        await server.close()

    run(scenario())


def test_a_bad_hello_is_refused_and_the_server_keeps_serving(socket_path):
    async def scenario():
        server = await started(socket_path)
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(b"GET / HTTP/1.1\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on us
        writer.close()
        assert server.channels() == {}
        receiver = Receiver(socket_path)
        channel = await connected(server)
        await channel.send(delivery())
        assert receiver.got == [delivery()]
        await server.close()

    run(scenario())


@pytest.mark.parametrize(
    "wire",
    [b"\x00\x00\x00\x05junk!", encode(Delivery("ETHUSDT", 1, (), None, False))],
    ids=["garbage", "another-symbol"],
)
def test_a_receiver_fed_garbage_raises_instead_of_trading_on_it(socket_path, wire):
    async def scenario():
        async def connector(reader, writer):
            await reader.readline()
            writer.write(wire)
            await reader.read()  # until the receiver hangs up
            writer.close()

        server = await asyncio.start_unix_server(connector, path=str(socket_path))
        got = []

        async def apply(d):
            got.append(d)

        with pytest.raises((ValueError, pickle.UnpicklingError)):
            await asyncio.wait_for(LocalLink(BTC, apply).run(str(socket_path)), 5)
        assert got == []
        server.close()
        await server.wait_closed()

    run(scenario())


# -- exchange calls, symbol -> connector -----------------------------------------------------------
class Venue:
    """What the connector serves: records calls; `place_order` answers after `delay_s`."""

    def __init__(self):
        self.calls = []
        self.finished = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, method, args):
        self.calls.append((method, args))
        await self.gate.wait()
        if method == "place_order":
            price, delay_s = args
            await asyncio.sleep(delay_s)
            self.finished.append(price)
            return OrderReport(BTC, f"o{price}", Side.BUY, D(price), D("1"), OrderStatus.OPEN)
        if method == "fetch_balances":
            raise RateLimited("slow down", retry_after_s=2.5)
        raise ValueError(f"no such call {method}")


async def serving(path, venue):
    server = LocalChannelServer(path, serve=venue)
    await server.start()
    return server


def test_calls_are_answered_by_id_even_out_of_order(socket_path):
    async def scenario():
        venue = Venue()
        server = await serving(socket_path, venue)
        receiver = Receiver(socket_path)
        await connected(server)
        slow = asyncio.create_task(receiver.link.call("place_order", "100", 0.2))
        fast = asyncio.create_task(receiver.link.call("place_order", "101", 0.0))
        assert (await fast).price == D("101")  # answered first, matched to its own call
        assert (await slow).price == D("100")
        assert [args for _, args in venue.calls] == [("100", 0.2), ("101", 0.0)]
        assert server.channel(BTC).served == 2 and receiver.link.calls == 2
        await server.close()

    run(scenario())


def test_a_venue_error_comes_back_as_itself_with_its_details(socket_path):
    async def scenario():
        server = await serving(socket_path, Venue())
        receiver = Receiver(socket_path)
        await connected(server)
        with pytest.raises(RateLimited) as e:
            await receiver.link.call("fetch_balances")
        assert e.value.retry_after_s == 2.5
        with pytest.raises(RuntimeError, match="ValueError: no such call"):  # not one of ours
            await receiver.link.call("cancel_all", BTC)
        await server.close()

    run(scenario())


def test_a_delivery_can_call_the_connector_while_it_is_applied(socket_path):
    """The engine places orders while it applies a delivery, and the answer comes back on the
    same socket that carried the delivery: this must not deadlock."""

    async def scenario():
        server = await serving(socket_path, Venue())
        placed = []

        async def apply(d):
            placed.append(await link.call("place_order", str(d.tick.price), 0.0))

        link = LocalLink(BTC, apply)
        task = asyncio.create_task(link.run(str(socket_path)))
        channel = await connected(server)
        await asyncio.wait_for(channel.send(delivery("105")), 5)  # acked after the call
        assert [r.price for r in placed] == [D("105")]
        await server.close()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_a_call_in_flight_when_the_connector_goes_is_maybe_done_and_a_new_one_never_sent(
    socket_path,
):
    async def scenario():
        venue = Venue()
        venue.gate.clear()
        server = await serving(socket_path, venue)
        receiver = Receiver(socket_path)
        await connected(server)
        pending = asyncio.create_task(receiver.link.call("place_order", "100", 0.0))
        await eventually(lambda: venue.calls, what="the call at the connector")
        await server.close()  # the connector dies with the call under way
        with pytest.raises(ChannelClosed) as e:
            await asyncio.wait_for(pending, 5)
        assert e.value.sent  # written: it may have happened
        await asyncio.wait_for(receiver.task, 5)
        assert not receiver.link.connected
        with pytest.raises(ChannelClosed) as e:
            await receiver.link.call("place_order", "101", 0.0)
        assert not e.value.sent  # never written: safe to send another way

    run(scenario())


def test_a_delivery_that_fails_to_apply_is_refused_and_the_link_stays_up(socket_path):
    async def scenario():
        server = await started(socket_path)
        failures = [ExchangeUnavailable("venue down during the resync")]
        applied = []

        async def apply(d):
            if failures:
                raise failures.pop()
            applied.append(d)

        link = LocalLink(BTC, apply)
        task = asyncio.create_task(link.run(str(socket_path)))
        channel = await connected(server)
        with pytest.raises(DeliveryRefused, match="ExchangeUnavailable: venue down"):
            await channel.send(delivery("100", resync=True))
        await channel.send(delivery("101", seq=2, resync=True))  # the mailbox's retry
        assert [d.tick.price for d in applied] == [D("101")]
        assert server.channel(BTC) is channel and link.connected and link.refused == 1
        await server.close()
        await asyncio.wait_for(task, 5)

    run(scenario())


def test_a_delivery_under_way_when_the_connector_goes_is_finished_not_cut_off(socket_path):
    """Its calls after the drop fail as never sent (so they can go another way) and the apply
    runs to its end before the link's `run` returns."""

    async def scenario():
        server = await serving(socket_path, Venue())
        gate, outcomes = asyncio.Event(), []

        async def apply(d):
            outcomes.append("applying")
            await gate.wait()
            try:
                await link.call("place_order", "100", 0.0)
            except ChannelClosed as e:
                outcomes.append("not sent" if not e.sent else "maybe sent")
            outcomes.append("finished")

        link = LocalLink(BTC, apply)
        task = asyncio.create_task(link.run(str(socket_path)))
        channel = await connected(server)
        send = asyncio.create_task(channel.send(delivery()))
        await eventually(lambda: outcomes == ["applying"], what="the delivery being applied")
        await server.close()  # the connector goes while the delivery is being applied
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(send, 5)
        await eventually(lambda: not link.connected, what="the link to notice")
        assert not task.done()  # still finishing the delivery
        gate.set()
        await asyncio.wait_for(task, 5)
        assert outcomes == ["applying", "not sent", "finished"]

    run(scenario())


def test_a_call_under_way_when_the_symbol_goes_is_not_cut_off_in_the_connector(socket_path):
    async def scenario():
        venue = Venue()
        venue.gate.clear()
        server = await serving(socket_path, venue)
        receiver = Receiver(socket_path)
        await connected(server)
        pending = asyncio.create_task(receiver.link.call("place_order", "100", 0.0))
        await eventually(lambda: venue.calls, what="the call at the connector")
        receiver.task.cancel()  # the symbol actor dies
        with pytest.raises((ChannelClosed, asyncio.CancelledError)):
            await asyncio.wait_for(pending, 5)
        await eventually(lambda: server.channel(BTC) is None, what="the channel closed")
        venue.gate.set()  # the venue answers after all: the connector saw it through
        await eventually(lambda: venue.finished == ["100"], what="the call to finish")
        await server.close()

    run(scenario())


def test_a_cancelled_send_closes_the_channel_so_no_late_answer_is_misread(socket_path):
    async def scenario():
        server, receiver, channel, send = await in_flight(socket_path)
        send.cancel()  # e.g. the route is removed while a delivery is in flight
        with pytest.raises(asyncio.CancelledError):
            await send
        assert channel.closed and server.channel(BTC) is None
        receiver.gate.set()
        await asyncio.wait_for(receiver.task, 5)
        await server.close()

    run(scenario())


def test_a_cancel_raised_inside_the_venue_code_is_answered_not_left_hanging(socket_path):
    async def scenario():
        async def serve(method, args):
            raise asyncio.CancelledError()  # from a library, not a cancel of ours

        server = await serving(socket_path, serve)
        receiver = Receiver(socket_path)
        await connected(server)
        with pytest.raises(RuntimeError, match="CancelledError inside the connector"):
            await asyncio.wait_for(receiver.link.call("place_order", "100", 0.0), 5)
        await server.close()

    run(scenario())


def test_sockets_of_dead_connectors_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / "connector-999999999-abcd.sock"
    alive = tmp_path / f"connector-{os.getpid()}-abcd.sock"
    other = tmp_path / "connector-notapid.sock"
    for path in (dead, alive, other):
        path.touch()
    assert sweep(tmp_path, "connector") == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


# -- quiet boxes: the symbol tells the connector which ticks need not wake it -------------------
@pytest.mark.parametrize(
    "box",
    [
        None,
        QuietBox(D("99.5"), D("100.25"), None, ANY, 2**63),
        QuietBox(D("1E-8"), D("0.00002"), (D("99.01"), D("100.01")), (D("98"), D("99")), 5),
    ],
)
def test_quiet_boxes_survive_the_wire_exactly(box):
    assert parse_box(box_text(box)) == box


@pytest.mark.parametrize("text", [b"1 2 - -", b"1 2 - - * * x", b"a 2 - - * * 5", b"1 2 3 - * * 5"])
def test_a_garbled_box_is_an_error(text):
    with pytest.raises(ValueError, match="bad quiet box"):
        parse_box(text)


def test_the_receivers_box_comes_with_its_ack_and_later_pushes_replace_it(socket_path):
    """Through a real mailbox: the ack's box holds quiet ticks back, a pushed None releases
    the held one, and a closed channel forgets the box."""

    async def scenario():
        router = Router(hold_s=30)
        server = LocalChannelServer(socket_path, on_gate=lambda s, b: router.mailbox(s).set_gate(b))
        await server.start()
        boxes = [QuietBox(D("99"), D("101"), None, ANY, 2**62)]
        got = []

        async def apply(d):
            got.append(d.tick.price)

        link = LocalLink(BTC, apply, lambda: boxes[-1])
        task = asyncio.create_task(link.run(str(socket_path)))
        channel = await connected(server)
        router.add(BTC, channel.send)
        mailbox = router.mailbox(BTC)
        router.tick(tick("100"))
        await eventually(lambda: mailbox.gate == boxes[0], what="the box from the ack")
        router.tick(tick("100.5"))  # inside: held
        router.tick(tick("100.7"))
        await eventually(lambda: mailbox.held == 2, what="two ticks held")
        assert got == [D("100")] and channel.sent == 1
        boxes.append(None)  # the symbol's state changed outside a delivery (a risk halt)
        link.push_gate()
        await eventually(lambda: got == [D("100"), D("100.7")], what="the held tick")
        assert mailbox.gate is None  # the ack said: every tick may matter
        boxes.append(QuietBox(D("100"), D("102"), None, ANY, 2**62))
        link.push_gate()
        await eventually(lambda: mailbox.gate == boxes[-1], what="the pushed box")
        task.cancel()  # the symbol goes away
        await eventually(lambda: mailbox.gate is None, what="the box forgotten")
        await router.close()
        await server.close()

    run(scenario())


def test_a_box_read_after_the_channel_was_replaced_is_ignored():
    """Frames already buffered on a channel that a newer connection replaced come from the old
    receiver: its box would be applied to the mailbox the new one now answers for."""

    class Writer:
        def write(self, data):
            pass

        def close(self):
            pass

    async def scenario():
        heard = []
        reader = asyncio.StreamReader()
        channel = local_channel.LocalChannel(
            BTC, reader, Writer(), on_gate=lambda s, b: heard.append(b)
        )
        box = QuietBox(D("99"), D("101"), None, ANY, 2**62)
        reader.feed_data(local_channel.frame(local_channel.GATE, box_text(box)))
        reader.feed_eof()
        channel.close()  # replaced before its buffered frames were read
        await channel.read_loop()
        assert heard == [None]  # forgotten at close; the old receiver's box is not applied

    run(scenario())
