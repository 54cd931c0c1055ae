"""The agent's own log: stderr plus a rotating ``agent.log``, with secrets redacted.

Redaction happens on the *formatted* record (message, arguments, traceback and stack),
so a secret inside an exception's text is caught as well as one in a message. What is
redacted:

- the values passed to ``setup_logging(secrets=...)`` (the API key);
- every value given to ``register_secret`` (each claimed job's token: job tokens have
  no recognisable shape, so they must be named);
- anything shaped like an API key (``wak_…``) and the value after ``Bearer``.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import threading
from collections import OrderedDict
from pathlib import Path

# API keys (wak_ + 32 base62) wherever they appear, and bearer values in echoed headers.
_SECRET_PATTERNS = (
    re.compile(r"wak_[0-9A-Za-z]{8,}"),
    re.compile(r"(?i)(bearer\s+)[\x21-\x7e]+"),
)
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8  # shorter values would redact ordinary words
MAX_REGISTERED = 1000  # job tokens remembered; the oldest are forgotten past this

_registered: OrderedDict[str, None] = OrderedDict()
_registered_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact ``value`` from every log line from now on (e.g. a job token after a claim)."""
    if len(value) < MIN_SECRET_CHARS:
        return
    with _registered_lock:
        _registered[value] = None
        _registered.move_to_end(value)
        while len(_registered) > MAX_REGISTERED:
            _registered.popitem(last=False)


def registered_secrets() -> tuple[str, ...]:
    with _registered_lock:
        return tuple(_registered)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with ``secrets``, registered secrets and key-shaped values replaced."""
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted({*secrets, *registered_secrets()}, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, traceback, stack) never holds a known secret."""

    def __init__(self, fmt: str = FORMAT, *, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's message, for handlers with a formatter of their own."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: str, *, log_file: Path | None, secrets: tuple[str, ...] = ()) -> None:
    """Send the ``training_agent`` loggers to stderr and ``log_file`` (10 MB x 5).

    uvicorn's loggers (the status API's server) go to the same handlers at WARNING, so
    nothing reaches stderr unformatted or unredacted.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8"
            )
        )
    formatter = RedactingFormatter(secrets=secrets)
    for handler in handlers:
        handler.setFormatter(formatter)
    for name, logger_level in (("training_agent", level), ("uvicorn", "WARNING")):
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(logger_level)
        logger.propagate = False
