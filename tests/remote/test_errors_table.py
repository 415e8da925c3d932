"""The one table between mm.errors and gRPC status codes, both directions."""

from __future__ import annotations

import grpc
import pytest

from connectors.remote.errors import TO_CODE, code_for, to_mm_error, trailers_for
from mm import errors
from mm.netaddr import host_port, is_loopback

C = grpc.StatusCode


@pytest.mark.parametrize("cls", [cls for cls, _ in TO_CODE])
def test_every_error_class_survives_the_round_trip(cls):
    error = cls("boom") if cls is not errors.RateLimited else cls("boom", retry_after_s=1.5)
    back = to_mm_error(code_for(error), str(error), dict(trailers_for(error)), call="X")
    assert type(back) is cls and "boom" in str(back)
    if cls is errors.RateLimited:
        assert back.retry_after_s == pytest.approx(1.5)


@pytest.mark.parametrize(
    "code", [C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.CANCELLED, C.UNKNOWN, C.INTERNAL]
)
def test_without_a_trailer_a_state_change_may_have_happened(code):
    """A broken connection or a crashed server: the order may exist. Never 'not placed'."""
    assert isinstance(
        to_mm_error(code, "", {}, call="PlaceOrder", changes_state=True), errors.RequestTimeout
    )
    read = to_mm_error(code, "", {}, call="GetOrder")
    assert isinstance(read, errors.TemporaryError)


def test_the_venue_saying_unavailable_means_not_processed_even_for_a_placement():
    trailers = dict(trailers_for(errors.ExchangeUnavailable("503")))
    error = to_mm_error(C.UNAVAILABLE, "503", trailers, call="PlaceOrder", changes_state=True)
    assert type(error) is errors.ExchangeUnavailable


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (C.INVALID_ARGUMENT, errors.InvalidArgument),
        (C.NOT_FOUND, errors.OrderNotFound),
        (C.ALREADY_EXISTS, errors.DuplicateOrder),
        (C.RESOURCE_EXHAUSTED, errors.RateLimited),
        (C.FAILED_PRECONDITION, errors.OrderRejected),
        (C.UNAUTHENTICATED, errors.AuthenticationError),
        (C.PERMISSION_DENIED, errors.AuthenticationError),
    ],
)
def test_codes_from_other_servers_map_by_meaning(code, cls):
    assert type(to_mm_error(code, "x", {}, call="X")) is cls


def test_a_class_name_from_the_wire_is_only_trusted_from_mm_errors():
    error = to_mm_error(C.NOT_FOUND, "x", {"mm-error-type": "SystemExit"}, call="X")
    assert type(error) is errors.OrderNotFound


def test_non_mm_errors_are_internal_and_carry_no_trailer():
    assert code_for(ValueError("bug")) is C.INTERNAL and trailers_for(ValueError("bug")) == ()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("127.evil.example", False),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_ipv6_addresses_are_bracketed_for_grpc():
    assert host_port("::1", 50051) == "[::1]:50051"
    assert host_port("127.0.0.1", 50051) == "127.0.0.1:50051"
