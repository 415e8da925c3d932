"""The local delivery channel: a connector's deliveries to symbols on the same machine over a
Unix socket instead of one Ray actor call each (DESIGN 6, "Routing"; docs/decisions.md).

Owns: the wire between a connector's `Mailbox` and one symbol's receiver, with exactly the
promise of the actor call it replaces: `LocalChannel.send` returns only after the receiver has
*applied* the delivery (journaled its updates, decided on its tick) and acked it, so the mailbox
keeps one delivery in flight and conflates newer ticks as before. If the receiver goes away
before its ack, `send` raises and the mailbox puts the delivery back and marks it `resync` — the
updates are re-sent (or reconciled over REST) — so a socket never loses an order update.
A Unix socket in a directory only this user can open needs no network address and no token.
Wire: the receiver sends `HELLO <symbol>\\n` once, then one byte `A` per applied delivery; the
connector sends frames: a 4-byte big-endian length, a kind byte, then either a tick-only
delivery as one line of text (`T`) or any other `Delivery` pickled (`P`: the serialization Ray
uses between these same processes; nobody else can open the socket).
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

from mm.core.model import PriceTick
from mm.engine.router import Delivery

log = logging.getLogger(__name__)

HELLO = b"HELLO "
ACK = b"A"
TICK, PICKLE = b"T", b"P"  # frame kinds
MAX_HELLO = 256
MAX_FRAME = 64 * 1024 * 1024  # 500 updates are ~200 KB; anything near this is garbage
HELLO_TIMEOUT_S = 5.0


class ChannelClosed(ConnectionError):
    """The receiver went away; the delivery may or may not have been applied."""


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


def encode(delivery: Delivery) -> bytes:
    """One frame. A tick alone (nearly every delivery) is a line of text, about 4x cheaper to
    make and read than a pickle; anything with order updates or a resync is pickled."""
    if delivery.tick is not None and not delivery.updates and not delivery.resync:
        body = TICK + _tick_text(delivery)
    else:
        body = PICKLE + pickle.dumps(delivery, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(4, "big") + body


async def read_frame(reader: asyncio.StreamReader) -> Delivery | None:
    """The next delivery, or None at a clean end of stream; ValueError on garbage."""
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
    kind, body = body[:1], body[1:]
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


class LocalChannel:
    """The connector's end of one symbol's channel."""

    def __init__(self, symbol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.symbol = symbol
        self._reader = reader
        self._writer = writer
        self._ack: asyncio.Future[None] | None = None
        self.closed = False
        self.sent = 0

    async def send(self, delivery: Delivery) -> None:
        """Write one delivery and wait until the receiver has applied it."""
        if self.closed:
            raise ChannelClosed(f"{self.symbol}: local channel closed")
        self._ack = asyncio.get_running_loop().create_future()
        self._writer.write(encode(delivery))
        try:
            await self._ack
        finally:
            self._ack = None
        self.sent += 1

    async def read_acks(self) -> None:
        """Resolve each pending send on its ack; on EOF or anything else, close and fail it."""
        try:
            while True:
                byte = await self._reader.read(1)
                if byte != ACK:
                    break
                if self._ack is not None and not self._ack.done():
                    self._ack.set_result(None)
        except ConnectionError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
        if self._ack is not None and not self._ack.done():
            self._ack.set_exception(ChannelClosed(f"{self.symbol}: receiver went away"))


class LocalChannelServer:
    """Accepts receivers on a Unix socket; the newest connection for a symbol wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        channel = LocalChannel(symbol, reader, writer)
        old = self._channels.get(symbol)
        self._channels[symbol] = channel
        if old is not None:
            old.close()  # a restarted receiver replaces its dead predecessor
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await channel.read_acks()
        finally:
            self._tasks.discard(task)
            if self._channels.get(symbol) is channel:
                del self._channels[symbol]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for channel in list(self._channels.values()):
            channel.close()
        self._channels.clear()
        if self._tasks:  # each ends once its channel is closed
            await asyncio.wait(list(self._tasks), timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


Handler = Callable[[Delivery], Awaitable[object]]


async def receive(path: str, symbol: str, apply: Handler) -> None:
    """Connect as `symbol`'s receiver and apply deliveries until the connector goes away
    (returns) or `apply` raises (propagates). Each delivery is acked after `apply` returns."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(HELLO + symbol.encode("ascii") + b"\n")
        while (delivery := await read_frame(reader)) is not None:
            if delivery.symbol != symbol:
                raise ValueError(f"a delivery for {delivery.symbol} on {symbol}'s channel")
            await apply(delivery)
            writer.write(ACK)
    except ConnectionError:
        return
    finally:
        writer.close()
