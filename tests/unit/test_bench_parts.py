"""The parts benchmarks share (bench.report, bench.cpu, bench.host, bench.jobs, bench.stack),
on their own: no database, no broker, no worker."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bench.cpu import TICK_S, CpuMeter, descendants, parse_proc_stat
from bench.host import Machine, tail
from bench.jobs import JobTimes, ms_between, sample_png, span_s
from bench.report import ms, table, write_section
from bench.stack import Stack

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_table_is_a_header_a_rule_and_a_line_per_row() -> None:
    assert table(["k", "images/s"], [["1", "4.80"], ["2", "9.50"]]) == [
        "| k | images/s |",
        "| --- | --- |",
        "| 1 | 4.80 |",
        "| 2 | 9.50 |",
    ]
    assert ms(12.345) == "12.3 ms"


def test_write_section_creates_then_replaces_only_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    assert write_section("## GPU", "## GPU\n\nfirst\n", doc) == doc
    assert doc.read_text(encoding="utf-8") == "## GPU\n\nfirst\n"
    doc.write_text("# Benchmarks\n\n## GPU\n\nfirst\n\n## Queue path (CPU)\n\nq\n")
    write_section("## GPU", "## GPU\n\nsecond", doc)
    assert doc.read_text() == "# Benchmarks\n\n## GPU\n\nsecond\n\n## Queue path (CPU)\n\nq\n"


def test_proc_stat_fields_are_read_after_the_command_name() -> None:
    # The command name may hold spaces and parentheses; fields count from after its last ")".
    line = "4242 (celery (pool) 2) S 41 4242 4242 0 -1 4194304 100 0 0 0 300 200 0 0 20 0 1"
    assert parse_proc_stat(line) == (41, pytest.approx(500 * TICK_S))


def test_descendants_walks_the_whole_tree_below_the_root() -> None:
    table_ = {1: (0, 0.0), 10: (1, 0.0), 11: (10, 0.0), 12: (10, 0.0), 13: (12, 0.0), 20: (1, 0.0)}
    assert descendants(table_, 10) == {10, 11, 12, 13}
    assert descendants(table_, 99) == {99}


def test_cpu_meter_counts_growth_and_new_processes_from_zero() -> None:
    meter = CpuMeter(engine=None, broker=None, worker_pid=10, cpus=2)  # type: ignore[arg-type]
    a = {
        "wall": 100.0, "bench": 1.0, "worker": {10: 1.0, 11: 2.0}, "main": {10: 1.0},
        "postgres": {7: 5.0}, "redis": 3.0, "machine": 50.0,
    }  # fmt: skip
    b = {
        "wall": 102.0, "bench": 1.5, "worker": {10: 1.5, 11: 3.0, 12: 0.25}, "main": {10: 1.5},
        "postgres": {7: 5.5, 8: 0.5}, "redis": 3.25, "machine": 53.0,
    }  # fmt: skip
    use = meter.between(a, b)
    assert (use.wall_s, use.bench_s, use.worker_s, use.worker_main_s) == (2.0, 0.5, 1.75, 0.5)
    assert (use.postgres_s, use.redis_s, use.machine_s, use.cpus) == (1.0, 0.25, 3.0, 2)
    assert meter.between({**a, "machine": None}, b).machine_s is None


def test_job_times_give_spans_and_gaps() -> None:
    def job(start_ms: int, end_ms: int) -> JobTimes:
        started = T0 + timedelta(milliseconds=start_ms)
        finished = T0 + timedelta(milliseconds=end_ms)
        return JobTimes(T0, started, finished, finished)

    assert span_s([job(200, 700), job(100, 400), job(300, 1100)]) == pytest.approx(1.0)
    assert ms_between(T0, T0 + timedelta(microseconds=1500)) == pytest.approx(1.5)


def test_sample_png_is_unique_per_seed_and_of_the_asked_size() -> None:
    assert sample_png(1) != sample_png(2) and sample_png(3) == sample_png(3)
    assert Image.open(io.BytesIO(sample_png(7, size=32))).size == (32, 32)


def test_tail_gives_the_last_lines_or_says_there_is_no_log(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert tail(log, lines=2) == "line 38\nline 39"
    assert tail(tmp_path / "missing.log") == "(no log)"


def _stack(tmp_path: Path) -> Stack:
    machine = Machine(2, "AMD EPYC", "3.11.7", "7.0.15", "15.20")
    return Stack("postgresql+psycopg://pg@db/b", "redis://r/12", tmp_path, 0.002, None, machine)


def test_stack_env_points_a_worker_at_the_stack_with_settings_as_variables(
    tmp_path: Path,
) -> None:
    env = _stack(tmp_path).env(backend="sleep", sleep_backend_ms=200, max_batch=1)
    assert env == {
        "STYLEBOT_DATABASE_URL": "postgresql+psycopg://pg@db/b",
        "STYLEBOT_BROKER_URL": "redis://r/12",
        "STYLEBOT_DATA_DIR": str(tmp_path / "data"),
        "STYLEBOT_BACKEND": "sleep",
        "STYLEBOT_SLEEP_BACKEND_MS": "200",
        "STYLEBOT_MAX_BATCH": "1",
    }


def test_stack_requests_come_from_distinct_users_with_distinct_photos(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    one, two = stack.request("sketch"), stack.request("sketch", image_size=48)
    assert one.style == two.style == "sketch"
    assert one.sender != two.sender and one.idempotency_key != two.idempotency_key
    assert one.fetch() != two.fetch() and one.declared_size == len(one.fetch())
    assert Image.open(io.BytesIO(two.fetch())).size == (48, 48)
