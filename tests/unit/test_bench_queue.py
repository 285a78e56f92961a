"""The queue benchmark's pure parts: percentiles, goals, the report and the BENCHMARKS.md edit,
and its command line's refusals (which need no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.cpu import CpuUse
from bench.host import Machine
from bench.queue import main
from bench.queue_render import render
from bench.queue_report import (
    EXTRAS,
    SECTION_TITLE,
    STAGES,
    Latency,
    Report,
    ScalingRun,
    best_runs,
    goals,
    ratios,
)
from bench.report import Spread, percentile, replace_section

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = list(range(1, 101))  # 1..100, deliberately shuffled below
    values = values[50:] + values[:50]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == pytest.approx(1.5)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_refuses_nonsense(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_spread_is_p50_p99_and_max() -> None:
    s = Spread.of([10.0, 30.0, 20.0])
    assert (s.p50, s.max) == (20.0, 30.0) and s.p99 == pytest.approx(29.8)


def _cpu(wall: float = 10.0, machine: float | None = 15.0) -> CpuUse:
    return CpuUse(
        wall_s=wall, bench_s=1.0, worker_s=4.0, worker_main_s=1.5, postgres_s=2.0, redis_s=0.5,
        machine_s=machine, cpus=2,
    )  # fmt: skip


def _report(p50: float = 12.0, p99: float = 40.0, rates: dict[int, float] | None = None) -> Report:
    rates = rates or {1: 4.8, 2: 9.5, 4: 18.0, 8: 30.0}
    stages = tuple((label, Spread(p50 / 5, p99 / 5, p99 / 4)) for _, label in STAGES)
    extras = tuple((label, Spread(1.0, 2.0, 3.0)) for _, label in EXTRAS)
    return Report(
        when=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        command="stylebot bench queue --write",
        machine=Machine(2, "AMD EPYC", "3.11.7", "7.0.15", "15.20"),
        latency=Latency(
            200, 10, Spread(p50, p99, p99 + 5), stages, extras, _cpu(), (19.0, 4.0, 4.0), 3, 7
        ),
        runs=tuple(ScalingRun(k, 40 * k, 40 * k / r, _cpu()) for k, r in rates.items()),
        sleep_ms=200,
        jobs_per_process=40,
        poll_ms=2.0,
        admit_rate=60.0,
    )


def test_ratios_are_relative_to_one_process() -> None:
    runs = [ScalingRun(1, 40, 10.0), ScalingRun(2, 80, 10.0), ScalingRun(4, 160, 16.0)]
    assert ratios(runs) == {1: 1.0, 2: 2.0, 4: 2.5}
    assert ratios(runs[1:]) == {}  # no baseline, no ratios


def test_each_process_count_counts_its_best_pass() -> None:
    runs = [
        ScalingRun(1, 40, 10.0, pass_no=1),  # 4.0/s: disturbed
        ScalingRun(2, 80, 10.0, pass_no=1),  # 8.0/s
        ScalingRun(1, 40, 8.0, pass_no=2),  # 5.0/s
        ScalingRun(2, 80, 11.0, pass_no=2),  # 7.3/s
    ]
    best = best_runs(runs)
    assert [(k, r.pass_no) for k, r in best.items()] == [(1, 2), (2, 1)]
    assert ratios(runs) == {1: 1.0, 2: pytest.approx(1.6)}  # best against best
    report = _report()
    twice = Report(
        report.when, report.command, report.machine, report.latency,
        (*report.runs, *(ScalingRun(k, 40 * k, 40 * k / 4.0, None, 2) for k in (1, 2, 4, 8))),
        200, 40, 2.0,
    )  # fmt: skip
    rows = [line for line in render(twice).splitlines() if line.startswith(("| 1 |", "| 8 |"))]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[3:6] for c in cells] == [
        ["4.80", "4.00 (— load)", "1.00×"],
        ["30.00", "4.00 (— load)", "6.25×"],
    ]
    assert "run in 2 passes" in render(twice) and "run in 1 pass " in render(report)


def test_goals_pass_at_the_boundary_and_miss_beyond() -> None:
    report = _report(p50=25.0, p99=100.1, rates={1: 10.0, 2: 17.0, 4: 33.9, 8: 80.0})
    verdicts = {g.text: g.verdict for g in goals(report)}
    assert verdicts == {
        "overhead p50 ≤ 25 ms": "PASS",
        "overhead p99 ≤ 100 ms": "MISS",
        "2 processes ≥ 1.70× one": "PASS",
        "4 processes ≥ 3.40× one": "MISS",
        "8 processes ≥ 6.80× one": "PASS",
    }


def test_goals_skip_process_counts_that_were_not_run() -> None:
    texts = [g.text for g in goals(_report(rates={1: 5.0, 2: 9.0}))]
    assert texts == ["overhead p50 ≤ 25 ms", "overhead p99 ≤ 100 ms", "2 processes ≥ 1.70× one"]


def test_cpu_use_splits_the_system_from_other_processes() -> None:
    c = _cpu()
    assert c.system_s == 6.5
    assert c.others_load == pytest.approx((15.0 - 6.5 - 1.0) / (10.0 * 2))
    assert _cpu(machine=None).others_load is None
    assert _cpu(machine=1.0).others_load == 0.0  # never negative


def test_render_puts_figures_ratios_and_verdicts_side_by_side() -> None:
    text = render(_report())
    assert text.startswith(SECTION_TITLE + "\n") and text.endswith("\n")
    assert "`stylebot bench queue --write`" in text and "2026-01-02 03:04 UTC" in text
    assert "2 CPUs (AMD EPYC), Python 3.11.7, Redis 7.0.15, PostgreSQL 15.20" in text
    assert "STYLEBOT_MAX_BATCH=1" in text
    assert "| **total: request → finished_at** | **12.0 ms** | **40.0 ms** | **45.0 ms** |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == ["8", "320", "10.67 s", "30.00", "—", "6.25×", "≥ 6.80×", "MISS"]
    assert cells[8] == "40.0 (75%)"  # ideal 8·1000/200 and how much of it was reached
    assert "| overhead p50 ≤ 25 ms | 12.0 ms | PASS |" in text
    assert "| 8 processes ≥ 6.80× one | 6.25× | MISS |" in text
    assert "Where the time goes" in text and "Scaling:" in text
    assert (
        "CPU per request" in text and "worker 20.0 ms (Celery's main process 7.5 ms of it)" in text
    )
    assert "ran 19.0 SQL statements in 4.0 transactions (4.0 pool checkouts" in text
    assert "3 of 200 requests took over 100 ms; PostgreSQL ran 7 checkpoints" in text


def test_render_tables_are_well_formed() -> None:
    lines = render(_report()).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ---"):
            width = line.count("|")
            block = [lines[i - 1]]
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                block.append(lines[j])
                j += 1
            assert all(row.count("|") == width for row in block), block


def test_render_copes_without_cpu_figures() -> None:
    report = _report()
    runs = tuple(ScalingRun(r.processes, r.jobs, r.span_s) for r in report.runs)
    lat = report.latency
    bare = Latency(lat.requests, lat.warmup, lat.total, lat.stages, lat.extras)
    text = render(Report(report.when, report.command, report.machine, bare, runs, 200, 40, 2.0))
    assert "CPU per request" not in text and "| 1 | 40 |" in text


DOC = """# Benchmarks

Intro.

## Classic (CPU) backend

Classic figures.

## Queue path (CPU)

Old figures.

### Old subsection

More old text.

## End to end on embedded defaults

Demo figures.
"""


def test_replace_section_replaces_only_its_own_section() -> None:
    new = "## Queue path (CPU)\n\nNew figures.\n\n### Latency\n\nx\n"
    out = replace_section(DOC, SECTION_TITLE, new)
    assert "Old figures" not in out and "Old subsection" not in out
    assert out.startswith(DOC[: DOC.index("## Queue path")])  # everything before is intact
    assert out.endswith("\n\n## End to end on embedded defaults\n\nDemo figures.\n")
    assert out.count("## Classic (CPU) backend") == 1 and "New figures." in out
    assert replace_section(out, SECTION_TITLE, new) == out  # idempotent


def test_replace_section_at_the_end_and_when_absent() -> None:
    at_end = DOC[: DOC.index("## End to end")]
    out = replace_section(at_end, SECTION_TITLE, "## Queue path (CPU)\n\nNew.\n")
    assert out == at_end[: at_end.index("## Queue path")] + "## Queue path (CPU)\n\nNew.\n"
    absent = "# Benchmarks\n\n## Classic (CPU) backend\n\nFigures."  # no final newline
    out = replace_section(absent, SECTION_TITLE, "## Queue path (CPU)\n\nNew.")
    assert out == absent + "\n\n## Queue path (CPU)\n\nNew.\n"
    assert replace_section("", SECTION_TITLE, "## Queue path (CPU)\n") == "## Queue path (CPU)\n"


def test_replace_section_needs_the_exact_title() -> None:
    doc = "## Queue path (CPU) notes\n\nkeep\n"  # a different heading that merely starts alike
    out = replace_section(doc, SECTION_TITLE, "## Queue path (CPU)\n\nNew.\n")
    assert out.startswith(doc) and out.endswith("## Queue path (CPU)\n\nNew.\n")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--processes", "1,two"], "--processes: comma-separated integers, got '1,two'"),
        (["--processes", "0,2"], "must be positive"),
        (["--requests", "0"], "must be positive"),
        (["--warmup", "-1"], "--warmup must not be negative"),
    ],
)
def test_main_refuses_bad_arguments_before_touching_any_service(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, prog="stylebot bench queue") == 2
    err = capsys.readouterr().err
    assert err.startswith("stylebot bench queue: ") and complaint in err
