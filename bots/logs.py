"""Logging set-up: one line per event, tokens redacted, chatty HTTP loggers quietened."""

from __future__ import annotations

import logging
import re

# Telegram tokens look like 123456789:AA...; they also appear inside Bot API URLs. Discord bot
# tokens are three base64url parts: the bot's id, a timestamp, an HMAC (MTIz….GhIjKl.AbC…).
TOKEN_PATTERN = re.compile(
    r"\d{6,12}:[A-Za-z0-9_-]{30,}"
    r"|\b[MNO][A-Za-z0-9_-]{22,30}\.[A-Za-z0-9_-]{5,7}\.[A-Za-z0-9_-]{27,45}\b"
)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return TOKEN_PATTERN.sub("[REDACTED]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        # Tracebacks quote URLs and arguments too: render them here, redacted, once.
        if record.exc_info:
            record.exc_text = self.redact(_FORMATTER.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def setup_logging(level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and Bot API URLs embed the token.
    for noisy in ("httpx", "httpcore", "urllib3", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
