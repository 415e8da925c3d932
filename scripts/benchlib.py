"""Pieces every benchmark script shares: latency statistics, process CPU time, child cleanup.

Owns: how a benchmark computes p50/p99 (nearest rank, like `LatencyStats.percentile` and
bench_ray.py), reads a process's CPU seconds, and stops a child process for sure.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest rank (as bench_ray.py and `LatencyStats.percentile` compute it)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(samples_ms: Sequence[float], wall_s: float) -> dict[str, float]:
    return {
        "calls": len(samples_ms),
        "p50_ms": percentile(samples_ms, 0.50),
        "p99_ms": percentile(samples_ms, 0.99),
        "mean_ms": statistics.fmean(samples_ms),
        "max_ms": max(samples_ms),
        "calls_per_s": len(samples_ms) / wall_s,
    }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def reap(process: Any) -> None:
    """Join a child process; terminate, then kill it if it does not end."""
    process.join(5)
    if process.is_alive():
        process.terminate()
        process.join(3)
    if process.is_alive():
        process.kill()
        process.join()


def install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks stop the child processes."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


@contextlib.contextmanager
def spawned(
    target: Callable[[Any], None], name: str, start_timeout_s: float = 30.0
) -> Iterator[tuple[Any, Any, Any]]:
    """Run `target(conn)` in a spawned process that answers ("ready", value) or ("error", why)
    on the pipe; yields (process, conn, value). Always sends ("stop",), then reaps it."""
    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    process = ctx.Process(target=target, args=(child_conn,), name=name, daemon=True)
    process.start()
    child_conn.close()
    try:
        if not conn.poll(start_timeout_s):
            raise TimeoutError(f"{name} not ready in {start_timeout_s} s")
        kind, value = conn.recv()
        if kind != "ready":
            raise RuntimeError(f"{name} failed: {value}")
        yield process, conn, value
    finally:
        with contextlib.suppress(OSError):
            conn.send(("stop",))
        conn.close()
        reap(process)
