"""Crash tests: SIGKILL a real market-maker process at each phase of the journal protocol.

The child (tests/engine/crash_child.py) runs the live runner against a simulated venue that
persists its state to a file. It kills itself at the N-th time it reaches a phase; a second
process recovers and trades on; then the DESIGN 4 invariants are checked against the venue.
"""

import json
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from mm.core.model import OrderStatus
from mm.engine.clock import VirtualClock
from mm.store.journal import Journal
from tests.engine.crash_child import STRATEGY, venue
from tests.helpers import check_invariants

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def child(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.engine.crash_child", "--dir", str(directory), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def crash_and_recover(directory: Path, symbol: str, phase: str, after: int) -> dict:
    died = child(
        directory,
        "--symbol",
        symbol,
        "--crash-phase",
        phase,
        "--crash-after",
        str(after),
        "--ticks",
        "100000",
    )
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    in_flight = json.loads((directory / "crash.json").read_text())
    recovered = child(directory, "--symbol", symbol, "--ticks", "150")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert json.loads(recovered.stdout.splitlines()[-1])["state"] == "QUOTING"
    return in_flight


def venue_at_rest(directory: Path):
    sim = venue(directory, 1)
    sim.clock = VirtualClock(0)
    return sim


@pytest.mark.parametrize("after", [1, 3])
@pytest.mark.parametrize("phase", ["intent_committed", "sent", "fill_received"])
def test_sigkill_at_each_phase_loses_and_doubles_nothing(tmp_path, phase, after):
    symbol = "BTCUSDT-PERP"
    in_flight = crash_and_recover(tmp_path, symbol, phase, after)
    journal = Journal(tmp_path / "journal.db")
    sim = venue_at_rest(tmp_path)
    numbers = check_invariants(journal, sim, symbol, STRATEGY)
    assert numbers["fills"] > 0
    on_venue = {o.client_id: o for o in sim.orders(symbol)}
    for client_id in in_flight["intents"]:  # resolved one way or the other, never left INTENT
        row = journal.order(client_id)
        assert row.status is not OrderStatus.INTENT
        if phase == "intent_committed":
            assert client_id not in on_venue and row.reason == "never_placed"
        elif client_id in in_flight["accepted"]:  # sent and taken: never declared never placed
            assert client_id in on_venue and row.reason != "never_placed"
        else:  # sent and refused by the venue (e.g. post-only): it does not exist there
            assert client_id not in on_venue and row.status is OrderStatus.REJECTED
    for client_id in in_flight["fills"]:  # the fill that died in memory was applied on restart
        counted = sum((f.qty for f in journal.fills(symbol) if f.client_id == client_id), D(0))
        assert counted == on_venue[client_id].filled > 0


def test_repeated_crashes_on_spot_keep_the_balance_and_journal_in_step(tmp_path):
    symbol = "BTCUSDT"
    for phase, after in (("fill_received", 1), ("sent", 4), ("intent_committed", 6)):
        crash_and_recover(tmp_path, symbol, phase, after)
    journal = Journal(tmp_path / "journal.db")
    numbers = check_invariants(journal, venue_at_rest(tmp_path), symbol, STRATEGY)
    assert numbers["fills"] > 0
