"""The agent's own log: stderr plus a rotating ``agent.log``, with secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

# API keys (wak_ + 32 base62) wherever they appear, and bearer values in echoed headers.
_SECRET_PATTERNS = (
    re.compile(r"wak_[0-9A-Za-z]{8,}"),
    re.compile(r"(?i)(bearer\s+)[\x21-\x7e]+"),
)
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's final message: known values and key-shaped text."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


def setup_logging(level: str, *, log_file: Path | None, secrets: tuple[str, ...] = ()) -> None:
    """Send the ``training_agent`` loggers to stderr and ``log_file`` (10 MB x 5)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8"
            )
        )
    redactor = RedactingFilter(secrets)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(redactor)
    root = logging.getLogger("training_agent")
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = False
