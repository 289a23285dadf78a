"""Logging: text or one JSON object a line, with every secret redacted.

The redactor knows every secret in the settings and, besides, anything shaped like an
Anthropic, Slack or Discord token or a Slack/Discord webhook URL, so that a secret the
process was never told about (one read from a credentials file, say) is hidden too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

REDACTED = "[redacted]"

_SHAPES = re.compile(
    "|".join(
        (
            r"sk-ant-[A-Za-z0-9_\-]{8,}",
            r"xox[abposre]-[A-Za-z0-9\-]{8,}",
            r"xapp-[A-Za-z0-9\-]{8,}",
            r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}",
            r"https?://hooks\.slack\.com/\S+",
            r"https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\S+",
            r"(?i:bearer)\s+[A-Za-z0-9._\-]{8,}",
        )
    )
)


class Redactor:
    """Replaces known secrets and secret-shaped strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if len(s) >= 6} - set(self._secrets)
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({*self._secrets, *new}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _SHAPES.sub(REDACTED, text)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact: Redactor, *, as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._redact = redact
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        if not self._json:
            return self._redact(super().format(record))
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry, ensure_ascii=False))


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Send every log line through one redacting handler; returns the redactor."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_RedactingFormatter(redact, as_json=fmt == "json"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDKs log request bodies and URLs at DEBUG; they pass the redactor too, and are
    # held at INFO unless the operator asked for DEBUG.
    for noisy in ("httpx", "httpcore", "slack_bolt", "slack_sdk", "discord", "apscheduler"):
        logging.getLogger(noisy).setLevel(level if level == "DEBUG" else "WARNING")
    return redact
