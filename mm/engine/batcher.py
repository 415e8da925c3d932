"""Many callers' requests as one call (DESIGN 6: symbols on one node report risk together).

Owns: `Batcher` — what callers submit within `window_s` of the first submission goes out as one
`flush(items)` call; every caller gets that call's result, or its error. A caller that gives up
(cancelled) leaves its item in the batch: what was submitted is sent. Batches may overlap: one
is collected while the previous is still being flushed.
Must not: import Ray or know what the items are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[R]], window_s: float) -> None:
        self._flush = flush
        self.window_s = window_s
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self.submitted = 0
        self.batches = 0
        self._closed = False

    async def submit(self, item: T) -> R:
        """Wait for the batch holding `item` to be flushed; its result (or error) is ours.
        After `close`: RuntimeError."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append((item, future))
        self.submitted += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._collect())
            self._timer.add_done_callback(self._window_ended)
        return await future

    def _window_ended(self, timer: asyncio.Task[None]) -> None:
        """A window cancelled from outside (even before it began): its callers are told, and
        the next submission starts a new one."""
        if timer.cancelled() and self._timer is timer:
            batch, self._items, self._timer = self._items, [], None
            for _, future in batch:
                future.cancel()

    async def _collect(self) -> None:
        await asyncio.sleep(self.window_s)
        batch, self._items, self._timer = self._items, [], None
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        try:
            result = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as e:
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for _, future in batch:
            if not future.done():  # its caller gave up
                future.set_result(result)

    async def close(self) -> None:
        """Stop: pending and flushing callers are cancelled, later submissions refused."""
        self._closed = True
        items = self._items
        tasks = [t for t in (self._timer, *self._flushing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, future in items:
            future.cancel()
        self._items, self._timer = [], None
