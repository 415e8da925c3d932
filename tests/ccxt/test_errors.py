"""The one table from ccxt's exceptions to `mm.errors` (connectors/ccxt/errors.py).

Every exception class ccxt exports is classified here on purpose: a class added by a ccxt upgrade
fails `test_every_ccxt_exception_is_classified` until someone decides what it means for us.
"""

from __future__ import annotations

import inspect

import pytest
from ccxt.base import errors as ccxt_errors

from connectors.ccxt.errors import to_mm
from connectors.ccxt.venues import VENUES
from mm import errors

# ccxt class name -> what the engine does next (see mm/errors.py for each reaction).
EXPECTED: dict[str, type[errors.MMError]] = {
    # -- retry with backoff: the venue did not process it
    "BaseError": errors.ExchangeUnavailable,
    "OperationFailed": errors.ExchangeUnavailable,
    "NetworkError": errors.ExchangeUnavailable,
    "ExchangeNotAvailable": errors.ExchangeUnavailable,
    "OnMaintenance": errors.ExchangeUnavailable,
    "InvalidNonce": errors.ExchangeUnavailable,  # clock skew: resync and retry
    "ChecksumError": errors.ExchangeUnavailable,  # a stream's book went out of sync: resubscribe
    "BadResponse": errors.ExchangeUnavailable,
    "NullResponse": errors.ExchangeUnavailable,
    "CancelPending": errors.ExchangeUnavailable,  # the cancel is under way: ask again
    "UnsubscribeError": errors.ExchangeUnavailable,
    "DDoSProtection": errors.RateLimited,
    "RateLimitExceeded": errors.RateLimited,
    "RequestTimeout": errors.RequestTimeout,
    # -- record and carry on: this order was refused
    "ExchangeError": errors.OrderRejected,
    "OperationRejected": errors.OrderRejected,
    "NoChange": errors.OrderRejected,
    "MarginModeAlreadySet": errors.OrderRejected,
    "MarketClosed": errors.OrderRejected,
    "BadRequest": errors.InvalidOrder,
    "BadSymbol": errors.InvalidArgument,
    "InvalidOrder": errors.InvalidOrder,
    "OrderNotFillable": errors.InvalidOrder,
    "OrderImmediatelyFillable": errors.PostOnlyRejected,
    "InsufficientFunds": errors.InsufficientFunds,
    "DuplicateOrderId": errors.DuplicateOrder,
    "OrderNotFound": errors.OrderNotFound,
    "OrderNotCached": errors.OrderNotFound,
    # -- halt and call a human
    "AuthenticationError": errors.AuthenticationError,
    "PermissionDenied": errors.AuthenticationError,
    "AccountNotEnabled": errors.AuthenticationError,
    "AccountSuspended": errors.AuthenticationError,
    "ArgumentsRequired": errors.ConfigError,  # the venue table misses a parameter it needs
    "NotSupported": errors.ConfigError,
    "InvalidProxySettings": errors.ConfigError,
    "ContractUnavailable": errors.OperationalError,  # the configured contract does not trade
    "ManualInteractionNeeded": errors.OperationalError,  # e.g. accept new terms on the website
    "RestrictedLocation": errors.OperationalError,
    "ExchangeClosedByUser": errors.OperationalError,  # the client was closed: nothing may go out
    "InvalidAddress": errors.OperationalError,  # wallet calls: never made by the market maker
    "AddressPending": errors.OperationalError,
}


def ccxt_exception_classes() -> dict[str, type[Exception]]:
    """Every exception class `ccxt.base.errors` exports."""
    return {
        name: value
        for name in ccxt_errors.__all__
        if inspect.isclass(value := getattr(ccxt_errors, name)) and issubclass(value, BaseException)
    }


def test_every_ccxt_exception_is_classified() -> None:
    exported = ccxt_exception_classes()
    assert sorted(set(exported) - set(EXPECTED)) == [], "new ccxt classes: classify them here"
    assert sorted(set(EXPECTED) - set(exported)) == [], "classes ccxt no longer has"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_ccxt_exception_maps_to_its_reaction(name: str) -> None:
    cls = getattr(ccxt_errors, name)
    mapped = to_mm(cls("binance boom"), VENUES["binance"], call="fetch_order")
    assert type(mapped) is EXPECTED[name], f"{name} -> {type(mapped).__name__}"
    assert name in str(mapped) and "binance boom" in str(mapped)


@pytest.mark.parametrize(
    "name",
    [
        "ArgumentsRequired",
        "InvalidProxySettings",
        "ExchangeClosedByUser",
        "RestrictedLocation",
        "ManualInteractionNeeded",
    ],
)
def test_config_and_operational_problems_halt_instead_of_being_recorded_as_rejections(
    name: str,
) -> None:
    cls = getattr(ccxt_errors, name)
    mapped = to_mm(cls("boom"), VENUES["binance"], call="place_order", changes_state=True)
    assert isinstance(mapped, errors.OperationalError)
    assert not isinstance(mapped, errors.OrderRejected)


def test_a_network_failure_during_a_state_changing_call_may_have_gone_through() -> None:
    mapped = to_mm(
        ccxt_errors.NetworkError("reset"), VENUES["binance"], call="place_order", changes_state=True
    )
    assert type(mapped) is errors.RequestTimeout
    venue_5xx = to_mm(
        ccxt_errors.ExchangeNotAvailable("503"),
        VENUES["binance"],
        call="place_order",
        changes_state=True,
    )
    assert type(venue_5xx) is errors.ExchangeUnavailable
