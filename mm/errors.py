"""One exception tree, grouped by what the caller does next (retry, record and continue, halt).

Owns: every error the system raises on purpose. Foreign errors (ccxt, grpc, sqlite) are mapped
into it once, at the adapter, by table, with `raise ... from e`. Must not: import anything
outside the standard library.
"""

from __future__ import annotations


class MMError(Exception):
    """Base of every error raised on purpose by the market maker."""


# -- temporary: retry with backoff --------------------------------------------------------------
class TemporaryError(MMError):
    """Transient; the same call may succeed later. Retry with jittered backoff."""


class ExchangeUnavailable(TemporaryError):
    """The venue did not answer or answered 5xx; the request was not processed."""


class RateLimited(TemporaryError):
    """The venue refused the request for rate limits (HTTP 429/418); it was not processed."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeout(TemporaryError):
    """No answer in time. The request MAY have been processed: resolve by client id, never retry
    blindly and never assume it failed."""


class JournalBusy(TemporaryError):
    """Another process still holds this symbol's journal (an old actor not yet gone); wait."""


class StreamDisconnected(TemporaryError):
    """A stream ended or went silent; reconnect, then gap-fill over REST (reconcile)."""


# -- record and continue ------------------------------------------------------------------------
class OrderRejected(MMError):
    """The venue refused this order; record REJECTED with `reason` and carry on."""

    reason = "rejected"


class InvalidOrder(OrderRejected):
    """Price/qty violate the market's rules (tick, lot, min qty, min notional)."""

    reason = "invalid"


class InvalidArgument(InvalidOrder):
    """A field of the request is malformed (unknown symbol, non-positive price or qty, a decimal
    that does not parse, a missing id); it was refused before reaching the venue."""

    reason = "invalid_argument"


class PostOnlyRejected(OrderRejected):
    """A post-only order would have crossed the book and taken liquidity."""

    reason = "post_only"


class InsufficientFunds(OrderRejected):
    """Not enough balance or margin for the order."""

    reason = "insufficient_funds"


class ReduceOnlyRejected(OrderRejected):
    """A reduce-only order would have increased the position."""

    reason = "reduce_only"


class DuplicateOrder(OrderRejected):
    """The client order id was already used; the earlier order exists: look it up and adopt it."""

    reason = "duplicate"


class OrderNotFound(MMError):
    """No order with this id on the venue (cancel/lookup); resolve from the final status."""


# -- the request itself is wrong: fix it and ask again -------------------------------------------
class RequestError(MMError):
    """An operator's request cannot be done as asked (the message says why); nothing changed."""


class UnknownSymbol(RequestError):
    """The symbol is not registered with the running market maker."""


class SymbolExists(RequestError):
    """The symbol is already registered (remove it first to change its grid)."""


class NotRunning(RequestError):
    """No market maker is running where the command looked (start one with `mm run`)."""


# -- operational: halt and call a human ----------------------------------------------------------
class OperationalError(MMError):
    """Trading on this symbol (or all) must stop until a human looks."""


class ConfigError(OperationalError):
    """Configuration invalid; message names the key path, the value and what is allowed."""


class AuthenticationError(OperationalError):
    """API key missing, wrong or without permission."""


class ReconcileMismatch(OperationalError):
    """Journal and exchange disagree beyond tolerance and it cannot be explained."""


class Halted(OperationalError):
    """The symbol is halted; no order may be sent until it is resumed."""
