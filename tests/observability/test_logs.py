"""Redaction: registered secrets and secret-looking `key=value` pairs never reach a log line."""

import logging
from collections.abc import Iterator

import pytest

from mm.observability import logs
from mm.observability.logs import MASK, RedactingFilter, redact, register_secret, setup_logging

SECRET = "vmPUZE6mv9SD5VNHk4"


@pytest.fixture(autouse=True)
def isolated_secrets() -> Iterator[None]:
    """The registry is process-wide; give each test the registry it found."""
    saved = set(logs._secrets)
    yield
    logs._secrets.clear()
    logs._secrets.update(saved)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`setup_logging` replaces the root handlers; drop its handler and level afterwards."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if any(isinstance(f, RedactingFilter) for f in handler.filters):
            root.removeHandler(handler)
    root.setLevel(level)


# -- redact() -------------------------------------------------------------------------------------
def test_registered_secret_is_masked_wherever_it_appears() -> None:
    register_secret(SECRET)

    text = f"connect with {SECRET}; retry url=/v3?k={SECRET}&x=1 ({SECRET[::-1]})"

    assert redact(text) == f"connect with {MASK}; retry url=/v3?k={MASK}&x=1 ({SECRET[::-1]})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key=abcdef123", "api_key=***"),
        ("apiKey: abcdef123", "apiKey: ***"),
        ("API-KEY = abcdef123", "API-KEY = ***"),
        ("api_secret=zzz999 next", "api_secret=*** next"),
        ("secret=zzz999&x=1", "secret=***&x=1"),
        ("symbol=BTCUSDT&signature=3f1c9a&timestamp=1", "symbol=BTCUSDT&signature=***&timestamp=1"),
        ("token: tok_1234", "token: ***"),
        ("listenKey refresh token=abc.def-ghi", "listenKey refresh token=***"),
        ("passphrase='pp1234'", "passphrase='***'"),
        ("password=hunter2", "password=***"),
        ("X-MBX-APIKEY: vmPUZE6mv9SD5V", "X-MBX-APIKEY: ***"),
        ("headers={'X-MBX-APIKEY': 'vmPUZE6mv9SD5V'}", "headers={'X-MBX-APIKEY': '***'}"),
        ('{"api_key": "abcdef123", "qty": "1"}', '{"api_key": "***", "qty": "1"}'),
        ('{"secret":"s3cr3t","signature":"9a8b"}', '{"secret":"***","signature":"***"}'),
        ('{"passphrase": "pp1234", "token": "t0k3n"}', '{"passphrase": "***", "token": "***"}'),
        ("Authorization: Bearer eyJhbGciOi.xyz", "Authorization: Bearer ***"),
        ("authorization: bearer eyJhbGciOi.xyz", "authorization: bearer ***"),
    ],
)
def test_secret_looking_pairs_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "placed BUY 0.01 BTCUSDT @ 64675.00 as grid1-b-3",
        "price=65000 qty=0.01 side=SELL",
        "token bucket refilled; 5 tokens left",
        "signature verified",
        "the secretary keeps the keys",
        "halted: reconcile mismatch on BTCUSDT",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    register_secret("abc12")
    register_secret("")

    assert redact("order abc12 filled") == "order abc12 filled"


def test_six_characters_are_enough_to_register() -> None:
    register_secret("abc123")

    assert redact("order abc123 filled") == f"order {MASK} filled"


def test_authorization_with_other_schemes_is_masked() -> None:
    assert "dXNlcjpwYXNz" not in redact("Authorization: Basic dXNlcjpwYXNz")


# -- through a logger -------------------------------------------------------------------------
def test_logger_writes_masked_text_when_secret_is_a_format_argument(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    register_secret(SECRET)
    setup_logging()
    log = logging.getLogger("mm.test.logs")

    log.warning("signing request with %s", SECRET)
    log.warning("params %s", {"symbol": "BTCUSDT", "api_key": "abcdef123"})
    log.error("headers X-MBX-APIKEY=%s signature=%s", "zz9900", "cafe01")

    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"WARNING mm.test.logs: signing request with {MASK}",
        f"WARNING mm.test.logs: params {{'symbol': 'BTCUSDT', 'api_key': '{MASK}'}}",
        f"ERROR mm.test.logs: headers X-MBX-APIKEY={MASK} signature={MASK}",
    ]
    assert SECRET not in "\n".join(lines)


def test_logger_leaves_ordinary_messages_alone(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    setup_logging(logging.INFO)

    logging.getLogger("mm.test.logs").info("filled %s @ %s", "0.01", "64675.00")

    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("INFO mm.test.logs: filled 0.01 @ 64675.00")


def test_setup_logging_level_drops_lower_records(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    setup_logging()  # WARNING
    log = logging.getLogger("mm.test.logs")

    log.info("not shown")
    log.warning("shown")

    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING mm.test.logs: shown")


def test_setup_logging_twice_keeps_one_handler(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    setup_logging()
    setup_logging()

    logging.getLogger("mm.test.logs").warning("once")

    assert len(capsys.readouterr().err.splitlines()) == 1


def test_secret_in_a_logged_exception_is_masked(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    register_secret(SECRET)
    setup_logging()

    try:
        raise RuntimeError(f"venue refused key {SECRET}")
    except RuntimeError:
        logging.getLogger("mm.test.logs").exception("login failed")

    err = capsys.readouterr().err
    assert "login failed" in err
    assert SECRET not in err
