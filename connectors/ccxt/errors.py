"""The one table from ccxt's exceptions to `mm.errors` (plus the venue's own message overrides).

Owns: deciding what a ccxt failure means for the caller — retry with backoff, rate limited,
maybe-processed, rejected, not found, halt. Must not: retry anything itself.

Halt (`OperationalError` and its `ConfigError`/`AuthenticationError`) is for what no retry and
no other order can fix: keys, a missing parameter, a region ban, a closed client, a venue that
wants a human on its website. "Record the rejection and carry on" is only for this one order.

Rules that matter with money: a timeout or a broken connection during a state-changing call is
`RequestTimeout` (the order may exist: look it up by client id), never "not placed"; a venue
answer that says "not processed" (503, maintenance, 429) is `ExchangeUnavailable`/`RateLimited`.
"""

from __future__ import annotations

import ccxt

from connectors.ccxt.venues import Venue
from mm import errors
from mm.errors import MMError

# Most specific first: the first class the exception is an instance of wins.
TABLE: tuple[tuple[type[Exception], type[MMError]], ...] = (
    (ccxt.DuplicateOrderId, errors.DuplicateOrder),
    (ccxt.OrderImmediatelyFillable, errors.PostOnlyRejected),
    (ccxt.OrderNotFound, errors.OrderNotFound),
    (ccxt.OrderNotCached, errors.OrderNotFound),
    (ccxt.OrderNotFillable, errors.InvalidOrder),
    (ccxt.ContractUnavailable, errors.OperationalError),  # the configured contract does not trade
    (ccxt.InsufficientFunds, errors.InsufficientFunds),
    (ccxt.BadSymbol, errors.InvalidArgument),
    (ccxt.InvalidOrder, errors.InvalidOrder),
    (ccxt.RateLimitExceeded, errors.RateLimited),
    (ccxt.DDoSProtection, errors.RateLimited),
    (ccxt.OnMaintenance, errors.ExchangeUnavailable),
    (ccxt.ExchangeNotAvailable, errors.ExchangeUnavailable),
    (ccxt.RequestTimeout, errors.RequestTimeout),
    (ccxt.InvalidNonce, errors.ExchangeUnavailable),  # clock skew: resync and retry
    (ccxt.AuthenticationError, errors.AuthenticationError),  # incl. PermissionDenied
    (ccxt.ArgumentsRequired, errors.ConfigError),  # the venue table misses a parameter it needs
    (ccxt.InvalidProxySettings, errors.ConfigError),
    (ccxt.ManualInteractionNeeded, errors.OperationalError),  # e.g. accept terms on the website
    (ccxt.RestrictedLocation, errors.OperationalError),
    (ccxt.ExchangeClosedByUser, errors.OperationalError),  # closed: nothing may go out any more
    (ccxt.InvalidAddress, errors.OperationalError),  # wallet calls: the market maker makes none
    (ccxt.BadResponse, errors.ExchangeUnavailable),
    (ccxt.NetworkError, errors.ExchangeUnavailable),
    (ccxt.BadRequest, errors.InvalidOrder),
    (ccxt.NotSupported, errors.ConfigError),
    (ccxt.OperationRejected, errors.OrderRejected),
    (ccxt.ExchangeError, errors.OrderRejected),
)
# Anything else (`BaseError`, `OperationFailed`, `CancelPending`, a bug inside ccxt) is treated
# as an outage: `ExchangeUnavailable`. tests/ccxt/test_errors.py lists every ccxt class.


def is_bug(error: BaseException) -> bool:
    """Raised inside ccxt but not by ccxt (TypeError, AttributeError, KeyError...): a wrong call
    or a ccxt defect, not the venue. Mapped like an outage, but worth a human's look; unless it
    was raised while ccxt handled a venue error (`venue_error`), which is then what counts."""
    return not isinstance(venue_error(error), ccxt.BaseError)


def venue_error(error: BaseException) -> BaseException:
    """The ccxt error behind `error`: itself, or the one ccxt was handling when its own cleanup
    failed (ccxt 4.5's binance login deletes a subscription already gone: a KeyError would hide
    the venue's -2015 "Invalid API-key")."""
    context = error.__context__
    if not isinstance(error, ccxt.BaseError) and isinstance(context, ccxt.BaseError):
        return context
    return error


def to_mm(error: Exception, venue: Venue, *, call: str, changes_state: bool = False) -> MMError:
    """The `mm.errors` error `error` (raised by ccxt during `call`) stands for."""
    found = venue_error(error)
    error = found if isinstance(found, Exception) else error
    text = str(error)
    cls: type[MMError] | None = None
    for marker, override in venue.message_errors:
        if marker in text:
            cls = override
            break
    if cls is None:
        cls = next((mm for c, mm in TABLE if isinstance(error, c)), errors.ExchangeUnavailable)
    message = f"{call}: {type(error).__name__}: {text[:300]}"
    if changes_state and cls is errors.ExchangeUnavailable and _not_answered(error):
        cls = errors.RequestTimeout  # the connection broke: it may have gone through
    return cls(message)  # a RateLimited's Retry-After comes from the response headers (`_call`)


def _not_answered(error: Exception) -> bool:
    """A network failure without an answer from the venue (as opposed to a 5xx it sent)."""
    return isinstance(error, ccxt.NetworkError) and not isinstance(
        error, ccxt.ExchangeNotAvailable | ccxt.DDoSProtection | ccxt.InvalidNonce
    )
