"""Awaiting Ray calls with the market maker's own errors (the only place Ray errors are mapped).

Owns: one mapping for every way a call to an actor can fail. An `mm.errors` exception raised on
the remote side comes back as itself. Anything else — a dead, restarting or unreachable actor,
a lost object, a timeout, or an unexpected exception inside the callee — becomes a temporary
error: `RequestTimeout` for calls that change state (the change may or may not have happened:
resolve it, never assume it failed) and `ExchangeUnavailable` for reads. Must not: retry
(callers decide).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from mm.errors import ExchangeUnavailable, MMError, RequestTimeout


def _mapped(error: BaseException, changes_state: bool) -> Exception:
    if isinstance(error, RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, MMError):
            return cause
        what = f"the callee failed: {type(cause).__name__ if cause else 'error'}: {cause}"
    elif isinstance(error, TimeoutError):
        what = "no answer in time"
    else:
        what = f"actor unavailable: {type(error).__name__}"
    return lost(what, changes_state)


def lost(what: str, changes_state: bool) -> Exception:
    """The error for a call whose outcome is unknown: maybe-done for a state change."""
    if changes_state:
        return RequestTimeout(f"{what} (the change may still happen)")
    return ExchangeUnavailable(what)


async def call(ref: Any, *, changes_state: bool = False, timeout_s: float | None = None) -> Any:
    """Await an ObjectRef inside asyncio; raise what the remote side raised (mapped)."""
    try:
        if timeout_s is None:
            return await ref
        return await asyncio.wait_for(_awaited(ref), timeout_s)
    except (TimeoutError, RayError) as e:
        raise _mapped(e, changes_state) from None


async def _awaited(ref: Any) -> Any:
    return await ref


def get(ref: Any, *, timeout_s: float | None = None, changes_state: bool = False) -> Any:
    """Blocking variant for plain (non-async) drivers such as the CLI."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except (TimeoutError, RayError) as e:
        raise _mapped(e, changes_state) from None
