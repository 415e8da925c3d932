"""The local channel: a connector and a symbol on the same machine talk over a Unix socket
instead of one Ray actor call per message (DESIGN 6, "Routing"; docs/decisions.md).

Owns: the wire between a connector and one symbol actor, both ways, with exactly the promises
of the actor calls it replaces:
- deliveries (connector -> symbol): `LocalChannel.send` returns only after the receiver has
  *applied* the delivery (journaled its updates, decided on its tick) and acked it, so the
  mailbox keeps one delivery in flight and conflates newer ticks as before. If the receiver
  goes away before its ack, `send` raises and the mailbox puts the delivery back and marks it
  `resync`, so a socket never loses an order update;
- exchange calls (symbol -> connector): `LocalLink.call` runs one `Exchange` port method in
  the connector (under its one account-wide budget) and returns its result or raises its
  `mm.errors` exception (any other error comes back as a RuntimeError naming it). A call the
  link could not write raises `ChannelClosed(sent=False)` (safe to send another way); one
  written but not answered raises `ChannelClosed(sent=True)` (the caller treats a state change
  as maybe-done, like a timeout). A call under way in the connector when its symbol goes away
  runs to its end; it is never cut off midway.
A Unix socket in a directory only this user can open needs no network address and no token.
Wire: the symbol sends `HELLO <symbol>\\n` once; then both sides send frames: a 4-byte
big-endian length, a kind byte and a body. Connector -> symbol: `T` a tick-only delivery as one
line of text (nearly all traffic; ~4x cheaper than a pickle), `P` any other delivery pickled,
`R` a call's reply (pickled). Symbol -> connector: `A <seq> [<box>]` applied, `N <seq> <why>` not
applied (the mailbox re-sends it with resync; the connection stays up), `Q` a call (pickled),
`G [<box>]` the symbol's state changed outside a delivery. `<box>` is the symbol's `QuietBox`
after the event, as text (`lo hi ask_lo ask_hi bid_lo bid_hi until_ms`, `- -` for no field, `* *`
for any); absent when every tick may matter. The symbol writes each box right after computing
it, so boxes arrive in the order of the states they describe, and the connector applies them in
arrival order (`on_gate`). Pickle is what Ray uses between these same processes; nobody else can
open the socket.
Must not: import Ray or decide anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import stat
import tempfile
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from mm.core.model import PriceTick
from mm.core.quiet import ANY, Bounds, QuietBox
from mm.engine.router import Delivery
from mm.errors import MMError

log = logging.getLogger(__name__)

HELLO = b"HELLO "
TICK, PICKLE, REPLY, ACK, NACK, CALL, GATE = b"T", b"P", b"R", b"A", b"N", b"Q", b"G"  # kinds
MAX_HELLO = 256
MAX_REASON = 500
MAX_FRAME = 64 * 1024 * 1024  # 500 updates are ~200 KB; anything near this is garbage
HELLO_TIMEOUT_S = 5.0


class ChannelClosed(ConnectionError):
    """The other side went away. `sent`: the message was written, so it may have been acted on
    (a delivery applied, a call carried out); False: it surely was not."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


def _tick_text(d: Delivery) -> bytes:
    t = d.tick
    assert t is not None
    bid = "-" if t.bid is None else str(t.bid)
    ask = "-" if t.ask is None else str(t.ask)
    return f"{d.symbol} {d.seq} {t.price} {bid} {ask} {t.ts_ms} {d.tick_recv_ns}".encode()


def _tick_delivery(body: bytes) -> Delivery:
    symbol, seq, price, bid, ask, ts_ms, recv_ns = body.decode("ascii").split(" ")
    tick = PriceTick(
        symbol,
        Decimal(price),
        int(ts_ms),
        None if bid == "-" else Decimal(bid),
        None if ask == "-" else Decimal(ask),
    )
    return Delivery(symbol, int(seq), (), tick, False, int(recv_ns))


def _bounds_text(bounds: Bounds | None) -> str:
    if bounds is None:
        return "- -"
    if bounds is ANY:
        return "* *"
    return f"{bounds[0]} {bounds[1]}"


def box_text(box: QuietBox | None) -> bytes:
    """A quiet box as the text the channel carries (empty for None)."""
    if box is None:
        return b""
    ask, bid = _bounds_text(box.ask), _bounds_text(box.bid)
    return f"{box.lo} {box.hi} {ask} {bid} {box.until_ms}".encode()


def _bounds(lo: str, hi: str) -> Bounds | None:
    if (lo, hi) == ("-", "-"):
        return None
    if (lo, hi) == ("*", "*"):
        return ANY
    return Decimal(lo), Decimal(hi)


def parse_box(text: bytes) -> QuietBox | None:
    """The inverse of `box_text`; ValueError on anything else."""
    if not text:
        return None
    try:
        lo, hi, ask_lo, ask_hi, bid_lo, bid_hi, until = text.decode("ascii").split(" ")
        return QuietBox(
            Decimal(lo),
            Decimal(hi),
            _bounds(ask_lo, ask_hi),
            _bounds(bid_lo, bid_hi),
            int(until),
        )
    except (ValueError, ArithmeticError) as e:
        raise ValueError(f"bad quiet box {text[:200]!r}: {e}") from None


def frame(kind: bytes, body: bytes = b"") -> bytes:
    return (len(body) + 1).to_bytes(4, "big") + kind + body


def encode(delivery: Delivery) -> bytes:
    """A delivery's frame: a tick alone as text, anything with updates or a resync pickled."""
    if delivery.tick is not None and not delivery.updates and not delivery.resync:
        return frame(TICK, _tick_text(delivery))
    return frame(PICKLE, pickle.dumps(delivery, protocol=pickle.HIGHEST_PROTOCOL))


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next (kind, body), or None at a clean end of stream; ValueError on garbage."""
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ValueError("stream ended inside a frame header") from None
        return None
    size = int.from_bytes(header, "big")
    if not 0 < size <= MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ValueError("stream ended inside a frame") from None
    return body[:1], body[1:]


def decode(kind: bytes, body: bytes) -> Delivery:
    """A delivery from a `T` or `P` frame; ValueError on anything else."""
    if kind == TICK:
        try:
            return _tick_delivery(body)
        except (ValueError, ArithmeticError) as e:  # UnicodeDecodeError is a ValueError
            raise ValueError(f"bad tick frame: {e}") from None
    if kind != PICKLE:
        raise ValueError(f"unknown frame kind {kind!r}")
    delivery = pickle.loads(body)
    if not isinstance(delivery, Delivery):
        raise ValueError(f"a frame holds a {type(delivery).__name__}, not a Delivery")
    return delivery


async def read_frame(reader: asyncio.StreamReader) -> Delivery | None:
    """The next delivery, or None at a clean end of stream; ValueError on garbage."""
    message = await read_message(reader)
    return None if message is None else decode(*message)


def sweep(directory: Path, prefix: str) -> list[Path]:
    """Remove `<prefix>-<pid>-*.sock` files whose process is gone (a killed connector never
    cleans up); returns what was removed."""
    removed = []
    for path in directory.glob(f"{prefix}-*.sock"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        except (ValueError, IndexError, PermissionError):
            continue  # not ours to judge
    return removed


def private_dir() -> Path:
    """`$TMPDIR/opensqt-<uid>`, created 0700; refuses one another user owns or can open."""
    path = Path(tempfile.gettempdir()) / f"opensqt-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by this user")
    if info.st_mode & 0o077:
        raise PermissionError(f"{path} is open to other users (mode {info.st_mode & 0o777:o})")
    return path


Serve = Callable[[str, tuple[Any, ...]], Awaitable[Any]]
OnGate = Callable[[str, QuietBox | None], None]


class DeliveryRefused(Exception):
    """The receiver could not apply a delivery (it said why); the connection stays up."""


class LocalChannel:
    """The connector's end of one symbol's channel: deliveries out, calls in."""

    def __init__(
        self,
        symbol: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        serve: Serve | None = None,
        on_gate: OnGate | None = None,
    ):
        self.symbol = symbol
        self._reader = reader
        self._writer = writer
        self._serve = serve
        self._on_gate = on_gate
        self._ack: tuple[bytes, asyncio.Future[None]] | None = None  # (seq, answered)
        self._calls: set[asyncio.Task[None]] = set()
        self.closed = False
        self.sent = 0
        self.served = 0

    async def send(self, delivery: Delivery) -> None:
        """Write one delivery and wait until the receiver has applied it (`DeliveryRefused`
        when it could not). A send that ends without its answer (cancelled) closes the
        channel: an answer arriving later could otherwise be taken for the next delivery's."""
        if self.closed:
            raise ChannelClosed(f"{self.symbol}: local channel closed", sent=False)
        data = encode(delivery)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ack = (str(delivery.seq).encode(), answered)
        self._writer.write(data)
        try:
            await answered
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            self._ack = None
        self.sent += 1

    async def read_loop(self) -> None:
        """Answers resolve the pending send, calls are served concurrently; on EOF or garbage
        the channel closes (failing a pending send)."""
        try:
            while (message := await read_message(self._reader)) is not None:
                kind, body = message
                if kind in (ACK, NACK):
                    self._answered(kind, body)
                elif kind == GATE:
                    self._gate(parse_box(body))
                elif kind == CALL and self._serve is not None:
                    task = asyncio.create_task(self._answer(body))
                    self._calls.add(task)
                    task.add_done_callback(self._calls.discard)
                else:
                    raise ValueError(f"unexpected frame kind {kind!r}")
        except (ConnectionError, ValueError) as e:
            if not self.closed:
                log.warning("%s: local channel: %s", self.symbol, e)
        finally:
            self.close()

    def _answered(self, kind: bytes, body: bytes) -> None:
        seq, _, why = body.partition(b" ")
        if self._ack is None or self._ack[0] != seq:
            raise ValueError(f"an answer for delivery {seq!r} that is not in flight")
        answered = self._ack[1]
        if answered.done():
            return
        if kind == ACK:
            self._gate(parse_box(why))  # before the mailbox looks at its pending tick
            answered.set_result(None)
        else:
            answered.set_exception(DeliveryRefused(why.decode("utf-8", "replace")))

    def _gate(self, box: QuietBox | None) -> None:
        if self._on_gate is not None and not self.closed:  # a replaced channel has no say
            self._on_gate(self.symbol, box)

    async def _answer(self, body: bytes) -> None:
        """Run one call and write its reply; every outcome is answered (a caller never hangs),
        an error that is not one of ours travels as a RuntimeError naming it."""
        try:
            call_id, method, args = pickle.loads(body)
        except Exception as e:  # a broken peer: nothing can be answered
            log.warning("%s: unreadable call (%s); closing the channel", self.symbol, e)
            self.close()
            return
        assert self._serve is not None
        try:
            reply = (call_id, True, await self._serve(method, tuple(args)))
        except MMError as e:
            reply = (call_id, False, e)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # ours: the server is shutting down
            reply = (call_id, False, RuntimeError("CancelledError inside the connector"))
        except Exception as e:
            reply = (call_id, False, RuntimeError(f"{type(e).__name__}: {e}"))
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # an unpicklable result: say so, never hang
            data = pickle.dumps((call_id, False, RuntimeError(f"unpicklable reply: {e}")))
        self.served += 1
        if not self.closed:
            self._writer.write(frame(REPLY, data))

    def close(self, *, cancel_calls: bool = False) -> None:
        """Stop talking. Calls under way run to their end (an exchange call is never cut off
        midway; its reply is dropped) unless `cancel_calls` (shutdown)."""
        if not self.closed:
            self._gate(None)  # the symbol's box no longer reaches us: every tick may matter
            self.closed = True
            self._writer.close()
        if cancel_calls:
            for task in self._calls:
                task.cancel()
        if self._ack is not None and not self._ack[1].done():
            self._ack[1].set_exception(ChannelClosed(f"{self.symbol}: receiver went away"))


class LocalChannelServer:
    """Accepts symbol actors on a Unix socket; the newest connection for a symbol wins.
    `serve(method, args)` carries out their exchange calls; `on_gate(symbol, box)` hears each
    symbol's quiet box as it changes."""

    def __init__(
        self, path: Path, serve: Serve | None = None, on_gate: OnGate | None = None
    ) -> None:
        self.path = path
        self.serve = serve
        self.on_gate = on_gate
        self._channels: dict[str, LocalChannel] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a crashed predecessor's socket with our pid
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        os.chmod(self.path, 0o600)

    def channel(self, symbol: str) -> LocalChannel | None:
        channel = self._channels.get(symbol)
        return None if channel is None or channel.closed else channel

    def channels(self) -> dict[str, LocalChannel]:
        """The open channels by symbol."""
        return {s: c for s, c in sorted(self._channels.items()) if not c.closed}

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT_S)
        except (TimeoutError, ConnectionError, ValueError):
            writer.close()
            return
        symbol = hello[len(HELLO) :].strip().decode("ascii", "replace")
        if not hello.startswith(HELLO) or not symbol or len(hello) > MAX_HELLO:
            log.warning("local channel: bad hello %r", hello[:80])
            writer.close()
            return
        channel = LocalChannel(symbol, reader, writer, self.serve, self.on_gate)
        old = self._channels.get(symbol)
        self._channels[symbol] = channel
        if old is not None:
            old.close()  # a restarted receiver replaces its dead predecessor
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await channel.read_loop()
        finally:
            self._tasks.discard(task)
            if self._channels.get(symbol) is channel:
                del self._channels[symbol]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for channel in list(self._channels.values()):
            channel.close(cancel_calls=True)
        self._channels.clear()
        if self._tasks:  # each ends once its channel is closed
            await asyncio.wait(list(self._tasks), timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


Apply = Callable[[Delivery], Awaitable[object]]


Gate = Callable[[], QuietBox | None]


def _no_gate() -> None:
    return None


class LocalLink:
    """A symbol actor's end: deliveries in (applied one at a time, each answered after it is
    applied: `A` with the symbol's quiet box then (`gate()`), or `N` with the reason when
    applying raised), exchange calls out, quiet boxes pushed (`push_gate`). `run` lasts as long
    as the connection."""

    def __init__(self, symbol: str, apply: Apply, gate: Gate = _no_gate) -> None:
        self.symbol = symbol
        self._apply = apply
        self._gate = gate
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self.calls = 0
        self.applied = 0
        self.refused = 0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def run(self, path: str) -> None:
        """Connect and serve until the connector goes away (returns) or the wire carries
        garbage (raises). Then calls in flight fail with `ChannelClosed` and later ones go
        another way, and a delivery being applied is finished (not cut off) before this
        returns."""
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(HELLO + self.symbol.encode("ascii") + b"\n")
        self._writer = writer
        deliveries: asyncio.Queue[Delivery | None] = asyncio.Queue()
        applier = asyncio.create_task(self._apply_in_order(deliveries, writer))
        reading = asyncio.create_task(self._read(reader, deliveries))
        try:
            await asyncio.wait([applier, reading], return_when=asyncio.FIRST_COMPLETED)
            self._disconnect(writer)
            deliveries.put_nowait(None)  # the one under way is finished, nothing after it
            await applier
            if not reading.cancelled() and reading.exception() is not None:
                raise reading.exception()  # type: ignore[misc]
        finally:  # everything synchronous first: a second cancel may interrupt the await
            self._disconnect(writer)
            applier.cancel()
            reading.cancel()
            await asyncio.gather(applier, reading, return_exceptions=True)

    def _disconnect(self, writer: asyncio.StreamWriter) -> None:
        self._writer = None
        writer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"{self.symbol}: connector went away"))
        self._pending.clear()

    async def _read(self, reader: asyncio.StreamReader, out: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(ConnectionError):
            while (message := await read_message(reader)) is not None:
                kind, body = message
                if kind == REPLY:
                    call_id, ok, value = pickle.loads(body)
                    future = self._pending.pop(call_id, None)
                    if future is not None and not future.done():
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(value)
                    continue
                delivery = decode(kind, body)
                if delivery.symbol != self.symbol:
                    raise ValueError(f"a delivery for {delivery.symbol} on {self.symbol}'s link")
                out.put_nowait(delivery)

    async def _apply_in_order(self, queue: asyncio.Queue[Delivery | None], writer: Any) -> None:
        while (delivery := await queue.get()) is not None:
            seq = str(delivery.seq).encode()
            try:
                await self._apply(delivery)
            except Exception as e:  # the connector re-sends it (with resync), as over Ray
                self.refused += 1
                log.warning("%s: delivery %d not applied: %s", self.symbol, delivery.seq, e)
                why = f"{type(e).__name__}: {e}".encode("utf-8", "replace")[:MAX_REASON]
                writer.write(frame(NACK, seq + b" " + why))
                continue
            self.applied += 1
            box = box_text(self._gate())  # written at once: boxes go out in state order
            writer.write(frame(ACK, seq + b" " + box if box else seq))

    def push_gate(self) -> None:
        """Tell the connector the symbol's quiet box now (after a change outside a delivery)."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(frame(GATE, box_text(self._gate())))

    async def call(self, method: str, *args: Any) -> Any:
        """Run `method(*args)` of the exchange port in the connector."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ChannelClosed(f"{self.symbol}: not connected", sent=False)
        self._next_id += 1
        call_id = self._next_id
        body = pickle.dumps((call_id, method, args), protocol=pickle.HIGHEST_PROTOCOL)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        writer.write(frame(CALL, body))
        self.calls += 1
        try:
            return await future
        finally:
            self._pending.pop(call_id, None)
