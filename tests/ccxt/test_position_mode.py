"""The perpetual account's position mode on bitget, gate and bybit, where ccxt cannot read it
(`connectors/ccxt/position_mode.py`): the request is the one each venue documents, a one-way
answer passes, a hedged one is refused at load_markets, and an answer that cannot be read halts
instead of passing as one-way. The venue is `Replay` (tests/ccxt/test_venue_parsing.py) over the
documented answers in `fixtures/{venue}_position_mode.json`."""

from __future__ import annotations

from typing import Any

import pytest

from mm import errors
from tests.ccxt.test_venue_parsing import NOTHING, Replay, connect, fixture_of, run

VENUES = ("bitget", "gate", "bybit")


def asked(replay: Replay, venue: str) -> list[Any]:
    """The position-mode requests sent, each checked to carry the documented fields."""
    mode = fixture_of(venue, "position_mode")
    method, path = mode["route"].split(" ")
    sent = [r for r in replay.requests if r.method == method and r.path == path]
    for request in sent:
        for name, value in mode["request"].items():
            assert request.field(name) == value, (venue, name, request)
    return sent


def answering(venue: str, kind: str) -> dict[str, Any]:
    mode = fixture_of(venue, "position_mode")
    return {mode["route"]: mode[kind] if kind in mode else NOTHING[venue]}


@pytest.mark.parametrize("venue", VENUES)
def test_a_one_way_perpetual_account_is_asked_once_and_accepted(venue: str) -> None:
    async def scenario() -> None:
        exchange, replay = await connect(venue, "linear", signed=True)
        try:
            assert len(asked(replay, venue)) == 1
            # known one-way: loading the same symbol again does not ask again
            assert list(await exchange.load_markets(["BTCUSDT-PERP"])) == ["BTCUSDT-PERP"]
            assert len(asked(replay, venue)) == 1
        finally:
            await exchange.close()

    run(scenario)


@pytest.mark.parametrize("venue", VENUES)
def test_a_hedged_perpetual_account_is_refused_until_switched(venue: str) -> None:
    async def scenario() -> None:
        with pytest.raises(errors.ConfigError, match="hedge") as refused:
            await connect(venue, "linear", signed=True, routes=answering(venue, "hedged"))
        assert isinstance(refused.value, errors.OperationalError)  # the engine halts
        exchange, replay = await connect(venue, "linear", signed=True)
        try:
            replay.routes.update(answering(venue, "hedged"))
            exchange._mode_checked.clear()  # a fresh start on the same client: asked again
            with pytest.raises(errors.ConfigError, match="one-way"):
                await exchange.load_markets(["BTCUSDT-PERP"])
            replay.routes.update(answering(venue, "one_way"))  # switched at the venue
            assert list(await exchange.load_markets(["BTCUSDT-PERP"])) == ["BTCUSDT-PERP"]
            assert len(asked(replay, venue)) == 3
        finally:
            await exchange.close()

    run(scenario)


@pytest.mark.parametrize("venue", VENUES)
def test_an_answer_without_the_documented_mode_halts_naming_the_field(venue: str) -> None:
    field = {"bitget": "data.posMode", "gate": "in_dual_mode", "bybit": "result.list.0.positionIdx"}

    async def scenario() -> None:
        # the venue's success envelope with nothing in it (bybit: no position record at all)
        with pytest.raises(errors.OperationalError, match=field[venue]) as halted:
            await connect(venue, "linear", signed=True, routes=answering(venue, "nothing"))
        assert not isinstance(halted.value, errors.ConfigError)
        assert venue in str(halted.value)

    run(scenario)


@pytest.mark.parametrize("venue", VENUES)
def test_a_mode_of_another_type_is_not_read_as_one_way(venue: str) -> None:
    """`False` is not `0` nor `"0"`: a value of the wrong type is unreadable, not one-way."""
    mode = fixture_of(venue, "position_mode")
    answer = mode["one_way"]
    record = answer
    for key in {"bitget": ("data",), "gate": (), "bybit": ("result", "list", 0)}[venue]:
        record = record[key]
    field, value = {
        "bitget": ("posMode", 0),
        "gate": ("in_dual_mode", 0),
        "bybit": ("positionIdx", "0"),
    }[venue]
    record[field] = value

    async def scenario() -> None:
        with pytest.raises(errors.OperationalError, match="cannot read"):
            await connect(venue, "linear", signed=True, routes={mode["route"]: answer})

    run(scenario)


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(("market", "signed"), [("spot", True), ("linear", False)])
def test_spot_and_unsigned_clients_never_ask(venue: str, market: str, signed: bool) -> None:
    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=signed)
        try:
            assert asked(replay, venue) == []
        finally:
            await exchange.close()

    run(scenario)
