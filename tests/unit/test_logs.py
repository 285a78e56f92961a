"""Bot tokens never reach the logs: messages, arguments and tracebacks are redacted."""

from __future__ import annotations

import logging
import sys

import pytest

from bots.logs import RedactSecrets

pytestmark = pytest.mark.unit

TOKEN = "123456789:AAE" + "x" * 32


def _render(record: logging.LogRecord) -> str:
    RedactSecrets((TOKEN,)).filter(record)
    return logging.Formatter("%(message)s").format(record)


def test_message_and_arguments_are_redacted() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET %s", (f"https://x/bot{TOKEN}/getMe",), None
    )
    assert TOKEN not in _render(record) and "[REDACTED]" in _render(record)


def test_traceback_is_redacted() -> None:
    try:
        raise ConnectionError(f"cannot reach https://api.telegram.org/bot{TOKEN}/getUpdates")
    except ConnectionError:
        record = logging.LogRecord(
            "telegram", logging.ERROR, __file__, 1, "poll failed", (), sys.exc_info()
        )
    text = _render(record)
    assert "ConnectionError" in text and TOKEN not in text


def test_unknown_token_shape_is_redacted_by_pattern() -> None:
    other = "987654321:" + "B" * 35
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"token {other}", (), None)
    assert other not in _render(record)


def test_a_discord_shaped_token_is_redacted_by_pattern() -> None:
    discord_like = "MTA" + "x" * 23 + ".GaBcDe." + "y" * 38  # id . timestamp . hmac, made up
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"login {discord_like} ok", (), None)
    text = _render(record)
    assert discord_like not in text and text == "login [REDACTED] ok"
