"""Batcher: what is submitted within a window goes out as one call, every caller gets its answer."""

import asyncio

import pytest

from mm.engine.batcher import Batcher
from tests.helpers import eventually, run


class Recorder:
    def __init__(self, fail: Exception | None = None, hold: asyncio.Event | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail
        self.hold = hold

    async def __call__(self, items: list[str]) -> str:
        self.calls.append(items)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        return f"answer to {len(self.calls)}"


def test_submissions_within_the_window_are_one_call_and_all_get_its_answer():
    async def scenario():
        flush = Recorder()
        batcher = Batcher(flush, window_s=0.05)
        first = asyncio.gather(*(batcher.submit(f"r{i}") for i in range(5)))
        assert await first == ["answer to 1"] * 5
        assert flush.calls == [["r0", "r1", "r2", "r3", "r4"]]
        assert await batcher.submit("late") == "answer to 2"  # a new window
        assert flush.calls[1] == ["late"]
        assert (batcher.submitted, batcher.batches) == (6, 2)

    run(scenario())


def test_a_failed_call_fails_every_caller_of_its_batch_only():
    async def scenario():
        flush = Recorder(fail=RuntimeError("risk actor down"))
        batcher = Batcher(flush, window_s=0.01)
        results = await asyncio.gather(
            batcher.submit("a"), batcher.submit("b"), return_exceptions=True
        )
        assert [str(r) for r in results] == ["risk actor down"] * 2
        flush.fail = None
        assert await batcher.submit("c") == "answer to 2"
        assert flush.calls == [["a", "b"], ["c"]]

    run(scenario())


def test_a_new_batch_is_collected_while_the_previous_is_still_being_sent():
    async def scenario():
        hold = asyncio.Event()
        flush = Recorder(hold=hold)
        batcher = Batcher(flush, window_s=0.01)
        slow = asyncio.ensure_future(batcher.submit("first"))
        await eventually(lambda: len(flush.calls) == 1)
        second = asyncio.ensure_future(batcher.submit("second"))
        await eventually(lambda: len(flush.calls) == 2)
        assert flush.calls == [["first"], ["second"]] and not slow.done()
        hold.set()
        assert await slow == "answer to 2" and await second == "answer to 2"

    run(scenario())


def test_a_caller_that_gives_up_leaves_its_item_sent_and_the_others_answered():
    async def scenario():
        flush = Recorder()
        batcher = Batcher(flush, window_s=0.05)
        quitter = asyncio.ensure_future(batcher.submit("quitter"))
        stayer = asyncio.ensure_future(batcher.submit("stayer"))
        await asyncio.sleep(0)
        quitter.cancel()
        assert await stayer == "answer to 1"
        assert flush.calls == [["quitter", "stayer"]]
        with pytest.raises(asyncio.CancelledError):
            await quitter

    run(scenario())


def test_close_cancels_callers_waiting_for_a_window_or_a_call():
    async def scenario():
        flush = Recorder(hold=asyncio.Event())
        batcher = Batcher(flush, window_s=0.01)
        sending = asyncio.ensure_future(batcher.submit("sending"))
        await eventually(lambda: flush.calls == [["sending"]])  # its call is under way
        waiting = asyncio.ensure_future(batcher.submit("waiting"))
        await asyncio.sleep(0)
        await batcher.close()
        for caller in (sending, waiting):
            with pytest.raises(asyncio.CancelledError):
                await caller

    run(scenario())


def test_after_close_a_submission_is_refused():
    async def scenario():
        batcher = Batcher(Recorder(), window_s=0.01)
        await batcher.close()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit("late")

    run(scenario())


def test_a_window_cancelled_from_outside_tells_its_callers_and_the_next_starts_anew():
    async def scenario():
        flush = Recorder()
        batcher = Batcher(flush, window_s=0.05)
        waiting = asyncio.ensure_future(batcher.submit("first"))
        await asyncio.sleep(0)
        batcher._timer.cancel()  # as a loop being torn down does
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await batcher.submit("second") == "answer to 1"
        assert flush.calls == [["second"]]

    run(scenario())
