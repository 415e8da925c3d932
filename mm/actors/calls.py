"""Awaiting Ray calls with the market maker's own errors (the only place Ray errors are mapped).

Owns: turning `RayTaskError` back into the `mm.errors` exception the remote side raised, and a
dead or unreachable actor into a temporary error — `RequestTimeout` for calls that change state
(the call may have happened) and `ExchangeUnavailable` for reads. Must not: retry (callers decide).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from mm.errors import ExchangeUnavailable, MMError, RequestTimeout


def _mapped(error: Exception, changes_state: bool) -> Exception:
    if isinstance(error, RayTaskError):
        cause = getattr(error, "cause", None)
        return cause if isinstance(cause, MMError) else error
    kind = RequestTimeout if changes_state else ExchangeUnavailable
    return kind(f"actor unavailable: {type(error).__name__}")


async def call(ref: Any, *, changes_state: bool = False, timeout_s: float | None = None) -> Any:
    """Await an ObjectRef inside asyncio; raise what the remote side raised."""
    try:
        if timeout_s is None:
            return await ref
        return await asyncio.wait_for(_awaited(ref), timeout_s)
    except (TimeoutError, RayTaskError, RayActorError) as e:
        raise _mapped(e, changes_state) from None


async def _awaited(ref: Any) -> Any:
    return await ref


def get(ref: Any, *, timeout_s: float | None = None, changes_state: bool = False) -> Any:
    """Blocking variant for plain (non-async) drivers such as the CLI."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except (RayTaskError, RayActorError, GetTimeoutError) as e:
        raise _mapped(e, changes_state) from None
