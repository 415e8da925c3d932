"""Serving the Binance-dialect emulator with uvicorn on 127.0.0.1 (in process or as `mm emulator`).

Owns: the server's lifetime. Must not: bind anything but loopback unless asked explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import uvicorn


class Served(Protocol):
    """Anything with an ASGI app: the emulator, or a test's stand-in for another venue."""

    app: Any


@contextlib.asynccontextmanager
async def running(emulator: Served, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Serve `emulator` in this event loop; yields the bound port (`port=0`: a free one)."""
    config = uvicorn.Config(
        emulator.app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(), name="emulator")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start (port in use, ...)
                raise RuntimeError("the emulator stopped before it started")
            await asyncio.sleep(0.005)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
