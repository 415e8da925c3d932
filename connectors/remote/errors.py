"""The one table between `mm.errors` and gRPC status codes, used by both ends of the wire.

Owns: error class -> status code (server), status code + "mm-error-type" metadata -> error class
(client). Must not: decide retries (the engine does, from the class).

The server sends the code every gRPC client understands, plus the precise class name in the
trailing metadata so a Python client gets back exactly the error the exchange raised. A client
seeing a code without a known class falls back to the code's default class. For calls that
change state (place, cancel) a broken connection or server fault does not prove the request was
not processed, so those codes become `RequestTimeout`: the caller resolves by client id.
"""

from __future__ import annotations

import grpc

from mm import errors
from mm.errors import MMError

TYPE_KEY = "mm-error-type"
RETRY_AFTER_KEY = "mm-retry-after-ms"
C = grpc.StatusCode

# Most specific class first: the first entry the error is an instance of wins.
TO_CODE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, C.INVALID_ARGUMENT),
    (errors.ConfigError, C.INVALID_ARGUMENT),
    (errors.DuplicateOrder, C.ALREADY_EXISTS),
    (errors.InsufficientFunds, C.RESOURCE_EXHAUSTED),
    (errors.RateLimited, C.RESOURCE_EXHAUSTED),
    (errors.OrderRejected, C.FAILED_PRECONDITION),  # rules, post-only, reduce-only, venue reject
    (errors.OrderNotFound, C.NOT_FOUND),
    (errors.ExchangeUnavailable, C.UNAVAILABLE),
    (errors.StreamDisconnected, C.UNAVAILABLE),
    (errors.RequestTimeout, C.DEADLINE_EXCEEDED),
    (errors.JournalBusy, C.UNAVAILABLE),
    (errors.AuthenticationError, C.UNAUTHENTICATED),
    (errors.RequestError, C.INVALID_ARGUMENT),
    (errors.OperationalError, C.FAILED_PRECONDITION),
)

# A code without (a known) class: what it means to the caller.
FROM_CODE: dict[grpc.StatusCode, type[MMError]] = {
    C.INVALID_ARGUMENT: errors.InvalidArgument,
    C.NOT_FOUND: errors.OrderNotFound,
    C.ALREADY_EXISTS: errors.DuplicateOrder,
    C.RESOURCE_EXHAUSTED: errors.RateLimited,
    C.FAILED_PRECONDITION: errors.OrderRejected,
    C.UNAVAILABLE: errors.ExchangeUnavailable,
    C.DEADLINE_EXCEEDED: errors.RequestTimeout,
    C.UNAUTHENTICATED: errors.AuthenticationError,
    C.PERMISSION_DENIED: errors.AuthenticationError,
    C.UNIMPLEMENTED: errors.ConfigError,  # a client newer than its connector
}
# Codes after which a state-changing call may or may not have been processed.
UNCERTAIN = frozenset({C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.CANCELLED, C.UNKNOWN, C.INTERNAL})

# The classes a server may name (never resolve arbitrary names from the wire).
KNOWN: dict[str, type[MMError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, MMError)
}


def code_for(error: BaseException) -> grpc.StatusCode:
    for cls, code in TO_CODE:
        if isinstance(error, cls):
            return code
    return C.INTERNAL


def trailers_for(error: BaseException) -> tuple[tuple[str, str], ...]:
    if not isinstance(error, MMError):
        return ()
    out = [(TYPE_KEY, type(error).__name__)]
    retry = getattr(error, "retry_after_s", None)
    if retry is not None:
        out.append((RETRY_AFTER_KEY, str(int(retry * 1000))))
    return tuple(out)


def to_mm_error(
    code: grpc.StatusCode,
    details: str,
    trailers: dict[str, str],
    *,
    call: str,
    changes_state: bool = False,
) -> MMError:
    """The `mm.errors` error a failed call stands for."""
    cls = KNOWN.get(trailers.get(TYPE_KEY, ""))
    message = f"{call}: {details or code.name}"
    if cls is None:
        if changes_state and code in UNCERTAIN:
            cls = errors.RequestTimeout
            message += " (the request may have been processed; look it up by client id)"
        else:
            cls = FROM_CODE.get(code, errors.ExchangeUnavailable)
    if cls is errors.RateLimited:
        retry_ms = trailers.get(RETRY_AFTER_KEY)
        retry_s = int(retry_ms) / 1000 if retry_ms and retry_ms.isdigit() else None
        return errors.RateLimited(message, retry_after_s=retry_s)
    return cls(message)
