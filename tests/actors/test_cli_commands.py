"""The operator commands as a user runs them: `mm` in a separate process, talking to the
running market maker through Ray (the real CLI, the real cluster, exit codes and messages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import ray

from mm.actors.calls import get

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def mm_cli(*args: str, namespace: str) -> subprocess.CompletedProcess[str]:
    address = "auto"
    if ray.is_initialized():  # this test's cluster, whatever else runs on the machine
        address = ray.get_runtime_context().gcs_address
    return subprocess.run(
        [sys.executable, "-m", "mm.cli", *args, "--namespace", namespace, "--address", address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )


def test_nothing_running_is_a_clear_error_and_exit_3():
    result = mm_cli("status", namespace=f"none-{uuid.uuid4().hex[:8]}")
    assert result.returncode == 3, result.stderr
    assert "mm run" in result.stderr


def test_operator_commands_against_a_running_market_maker(market_maker):
    mm = market_maker(["BTCUSDT"])
    mm.wait_symbol("BTCUSDT", lambda s: s["state"] == "QUOTING")
    ns = mm.ns

    added = mm_cli("add-symbol", "SOLUSDT", "--interval", "0.1", "--buy-levels", "3", namespace=ns)
    assert added.returncode == 0, added.stderr
    assert "SOLUSDT: QUOTING" in added.stdout
    assert mm.symbol_status("SOLUSDT")["open_orders"] > 0

    again = mm_cli("add-symbol", "SOLUSDT", "--interval", "0.1", namespace=ns)
    assert again.returncode == 2 and "already registered" in again.stderr
    unlisted = mm_cli("add-symbol", "NOPEUSDT", "--interval", "1", namespace=ns)
    assert unlisted.returncode == 2 and "not listed" in unlisted.stderr
    no_interval = mm_cli("add-symbol", "ETHUSDT", namespace=ns)
    assert no_interval.returncode == 2 and "--interval" in no_interval.stderr
    bad_grid = mm_cli(
        "add-symbol", "ETHUSDT", "--interval", "1", "--mode", "sideways", namespace=ns
    )
    assert bad_grid.returncode == 2 and "mode" in bad_grid.stderr

    status = mm_cli("status", "--json", namespace=ns)
    assert status.returncode == 0, status.stderr
    assert set(json.loads(status.stdout)["symbols"]) == {"BTCUSDT", "SOLUSDT"}
    table = mm_cli("status", namespace=ns)
    assert table.returncode == 0 and "SOLUSDT" in table.stdout and "risk: ok" in table.stdout

    paused = mm_cli("pause", "SOLUSDT", namespace=ns)
    assert paused.returncode == 0 and "SOLUSDT: PAUSED" in paused.stdout
    resumed = mm_cli("resume", namespace=ns)
    assert resumed.returncode == 0 and "SOLUSDT: QUOTING" in resumed.stdout

    tripped = mm_cli("breaker", "trip", "--reason", "drill", namespace=ns)
    assert tripped.returncode == 0 and "halted=True" in tripped.stdout
    assert get(mm.handle.status.remote())["risk"]["breaker_reason"] == "manual: drill"
    reset = mm_cli("breaker", "reset", namespace=ns)
    assert reset.returncode == 0 and "halted=False" in reset.stdout

    removed = mm_cli("remove-symbol", "SOLUSDT", namespace=ns)
    assert removed.returncode == 0, removed.stderr
    assert "orders cancelled" in removed.stdout
    assert mm.connector("fetch_open_orders", "SOLUSDT") == []
    unknown = mm_cli("remove-symbol", "SOLUSDT", namespace=ns)
    assert unknown.returncode == 2 and "not registered" in unknown.stderr
