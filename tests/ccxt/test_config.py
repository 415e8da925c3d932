"""Building the ccxt client (connectors/ccxt/config.py): credentials reach ccxt and nothing else.

The secrets are registered for redaction when the client is built, so a failing call — ccxt's
own debug lines with the request headers, our mapped error, its ccxt cause, a traceback logged
by whoever halts — never shows the API key, secret or passphrase.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm import errors
from mm.core.model import OrderRequest, Side
from mm.engine.clock import VirtualClock
from mm.observability.logs import setup_logging
from tests.ccxt.rig import KEY, ccxt_binance

WRONG_SECRET = "not-the-secret-0001"  # the emulator refuses the signature: -1022
PASSPHRASE = "pass-phrase-0001"  # binance ignores it; it must stay hidden all the same


@pytest.fixture
def printed_logs(capsys: pytest.CaptureFixture[str]):
    """Everything the market maker's log handler prints at DEBUG, as `mm run` would set it up."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging(logging.DEBUG)
    try:
        yield lambda: capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_failing_authenticated_call_never_shows_a_secret(printed_logs) -> None:
    shown: list[str] = []

    async def main() -> None:
        clock = VirtualClock(1_700_000_100_000)
        sim = SimulatedExchange(
            SimConfig(balances={"USDT": D(1000)}, start_prices={"BTCUSDT": D("10000")}), clock
        )
        try:
            async with ccxt_binance(
                sim, api_secret=WRONG_SECRET, passphrase=PASSPHRASE
            ) as exchange:
                request = OrderRequest("BTCUSDT", "sec-1", Side.BUY, D("9900"), D("0.01"))
                for call in (exchange.place_order(request), exchange.fetch_balances()):
                    with pytest.raises(errors.AuthenticationError) as refused:
                        await call
                    error = refused.value
                    shown.extend([str(error), repr(error), str(error.__cause__)])
                    shown.append(repr(error.__cause__))
                    shown.append("".join(traceback.format_exception(error)))
                    logging.getLogger("mm.engine").error(
                        "halting BTCUSDT: %s", error, exc_info=error
                    )
                shown.append(repr(exchange.config))
        finally:
            await sim.close()

    asyncio.run(main())
    printed = printed_logs()
    assert "-1022" in printed and "Request:" in printed  # ccxt's debug lines were printed
    everything = "\n".join([printed, *shown])
    for secret in (KEY, WRONG_SECRET, PASSPHRASE):
        assert secret not in everything, secret
