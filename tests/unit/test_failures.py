"""A bot's failure reports: an outage is one line, anything else keeps its traceback."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from bots.core.failures import report

pytestmark = pytest.mark.unit


def _reported(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    try:
        raise exc
    except BaseException as raised:
        with caplog.at_level(logging.INFO, logger="t"):
            report(logging.getLogger("t"), "delivery_pass_failed", raised)
    return caplog.records


def test_a_database_outage_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    down = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused\nmore"))
    [record] = _reported(down, caplog)
    text = record.getMessage()
    assert record.levelname == "WARNING" and "\n" not in text
    assert "STYLEBOT_DATABASE_URL" in text and "Traceback" not in text


def test_anything_else_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    [record] = _reported(KeyError("style"), caplog)
    assert record.levelname == "ERROR" and "Traceback" in record.getMessage()
