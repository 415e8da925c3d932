"""Logging setup with secret redaction: no API key, secret, token or signature reaches a log.

Owns: the root handler format and redaction. Secrets registered with `register_secret` (e.g. from
`SecretStr` config values) are masked wherever they appear, and `key=value` pairs whose key looks
secret are masked by pattern — in the message, in exception tracebacks and in stack traces.
Must not: be bypassed by printing secrets elsewhere.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_PATTERN = re.compile(
    r"(?i)((?:api[_-]?key|api[_-]?secret|secret|passphrase|password|token|signature|"
    r"x-mbx-apikey|authorization)[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|digest|token)\s+)?"
    r"([^\s\"'&,}]+)"
)
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` in every log record from now on (ignored if too short to be a secret)."""
    if len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: no partial leaks
        text = text.replace(secret, MASK)
    return _PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Redacts the message, the formatted traceback and the stack of every record it sees."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the final line too, whatever a handler's records carry."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.WARNING) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
