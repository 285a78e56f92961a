"""`stylebot bench overlap` end to end: a real worker with the sleep backend, overlap off and on,
Redis and PostgreSQL. The figures are the benchmark's business; this checks every run happened,
every job was counted once, and the worker logged the GPU's idle time between calls."""

from __future__ import annotations

import pytest

from bench.overlap import _parser, main, run, speedups
from tests.dbutil import postgres_url
from tests.services import redis_url

pytestmark = pytest.mark.integration


def test_bench_overlap_runs_both_settings_and_reports_the_idle_gap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "--requests", "12", "--max-batch", "4", "--size", "128", "--sleep-ms", "150",
        "--passes", "1", "--broker-url", redis_url(), "--database-url", postgres_url(),
    ]  # fmt: skip
    runs = run(_parser("stylebot bench overlap").parse_args(argv))
    assert [(r.sleep_ms, r.overlap) for r in runs] == [(150, False), (150, True)]
    for r in runs:
        assert r.requests == 12 and len(r.latencies_s) == 12 and r.seconds > 0
        assert r.batches >= 3 and r.gaps_ms and all(g >= 0 for g in r.gaps_ms)
        # The stand-in GPU alone needs 12 / 4 calls × 150 ms; nothing can be faster.
        assert r.seconds >= 3 * 0.15
    assert len(speedups(runs)) == 1

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Worker overlap: CPU work beside the GPU call\n")
    assert "| 150 ms | off |" in out and "| 150 ms | on |" in out
    assert main(["--passes", "0"]) == 2
