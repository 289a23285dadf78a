"""Logs: text or JSON, and no secret in either, whether the process was told it or not."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from usage_bot._logging import REDACTED, configure_logging

SECRETS = {
    "anthropic": "sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123456789",
    "slack bot": "xoxb-1234567890-0987654321-abcdefABCDEF",
    "slack app": "xapp-1-A0123456789-1234567890-abcdef0123456789",
    "signing": "8f742231b10e8888abcd99yyyzzz85a5",
    "slack webhook": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
    "discord": "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789",
    "discord webhook": "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghi_JKL",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR"])
def test_known_secrets_never_reach_a_log_line(fmt: str, level: str) -> None:
    stream = io.StringIO()
    configure_logging(level=level, fmt=fmt, secrets=SECRETS.values(), stream=stream)
    log = logging.getLogger("usage_bot.test")
    for name, secret in SECRETS.items():
        for method in (log.debug, log.info, log.warning, log.error):
            method("%s is %s", name, secret)
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            log.exception("while using %s", name)
    text = stream.getvalue()
    assert text  # something was logged at every level
    for secret in SECRETS.values():
        assert secret not in text
    assert REDACTED in text
    if fmt == "json":
        for line in text.splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                assert {"time", "level", "logger", "message"} <= entry.keys()


def test_secret_shaped_strings_are_hidden_even_when_unknown() -> None:
    stream = io.StringIO()
    configure_logging(level="DEBUG", stream=stream)
    for secret in SECRETS.values():
        if secret == SECRETS["signing"]:
            continue  # a signing secret has no shape; it is redacted because it is known
        logging.getLogger("x").info("value=%s", secret)
    logging.getLogger("x").info("Authorization: Bearer abcdefghijklmnop")
    text = stream.getvalue()
    for secret in SECRETS.values():
        assert secret not in text
    assert "abcdefghijklmnop" not in text


def test_the_sdk_loggers_are_quiet_unless_debug_is_asked_for() -> None:
    configure_logging(level="INFO", stream=io.StringIO())
    assert logging.getLogger("slack_sdk").getEffectiveLevel() == logging.WARNING
    configure_logging(level="DEBUG", stream=io.StringIO())
    assert logging.getLogger("slack_sdk").getEffectiveLevel() == logging.DEBUG
