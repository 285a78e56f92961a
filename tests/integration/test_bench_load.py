"""`stylebot bench load`, short form: 60 people for 10 s through the Bot API emulator, the real
Telegram bot, PostgreSQL, Redis and one sleep-backend worker process. The figures mean little
at this size; the test checks that the run completes, prints its table, and that nothing was
lost, duplicated, over-granted or left unfinished."""

from __future__ import annotations

import re

import pytest

from bench.load import main
from tests.dbutil import postgres_url
from tests.services import redis_url

pytestmark = pytest.mark.integration

SHORT = ["--people", "60", "--seconds", "10", "--workers", "1", "--service-ms", "200",
         "--drain-s", "30"]  # fmt: skip
CHECKS = ("lost requests", "duplicated replies", "users over-granted quota", "jobs never finished")


def test_bench_load_short_form(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*SHORT, "--database-url", postgres_url(), "--redis-url", redis_url()])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("## Load: a viral minute through the Telegram bot\n")
    for check in CHECKS:
        assert re.search(rf"\| \*\*{check}\*\* [^|]*\| 0[^|]*\| 0 \| PASS \|", out), check
    assert "checks: all four counts are 0" in out
    sent = re.search(r"\| requests sent \| (\d+) in [\d.]+ s: ([\d.]+)/s", out)
    assert sent and int(sent[1]) > 60 and float(sent[2]) > 0
    first = re.search(r"\| first reply after injection: p50 / p99 / max \| ([^|]+) \|", out)
    assert first and first[1].count(" / ") == 2 and "no samples" not in first[1]
    lag = re.search(r"\| bot event loop lag [^|]*\| ([^|]+) \|", out)
    assert lag and "ms" in lag[1]
    assert re.search(r"\| messages sent or edited: most in any 1 s, all chats \| \d+ \(", out)
    assert "queued" in out  # some requests were admitted


def test_bench_load_refuses_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--people", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
