"""Logging setup with secret redaction: no API key, secret, token or signature reaches a log.

Owns: the root handler format and the redaction filter. Secrets registered with `register_secret`
(e.g. from `SecretStr` config values) are masked wherever they appear, and `key=value` pairs whose
key looks secret are masked by pattern. Must not: be bypassed by printing secrets elsewhere.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_PATTERN = re.compile(
    r"(?i)((?:api[_-]?key|api[_-]?secret|secret|passphrase|password|token|signature|"
    r"x-mbx-apikey|authorization)[\"']?\s*[:=]\s*[\"']?)(bearer\s+)?([^\s\"'&,}]+)"
)
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` in every log record from now on (ignored if too short to be a secret)."""
    if len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return _PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: int = logging.WARNING) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
