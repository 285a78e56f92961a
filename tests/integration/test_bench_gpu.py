"""`stylebot bench gpu` end to end on a CPU: the tiny random pipeline, a real worker, Redis and
PostgreSQL (or SQLite, as on a GPU machine without a database server). The figures mean nothing
on a CPU; the test checks that every phase ran and the report adds up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu import _difference, _parser, _styles_file, main, run
from bench.gpu_report import VARIANTS, Baseline, GpuReport, WorkerPath, goals
from tests.dbutil import postgres_url
from tests.services import redis_url

pytestmark = pytest.mark.integration

pytest.importorskip("diffusers")

TINY = [
    "--model", "tiny", "--device", "cpu", "--compile", "off", "--size", "64", "--steps", "4",
    "--requests", "9", "--baseline", "2", "--idle", "2", "--max-batch", "4",
    "--variants", "batched,overlapped-eager,compiled,graphs",
]  # fmt: skip


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_bench_gpu_runs_every_phase(database: str) -> None:
    admin = postgres_url() if database == "postgres" else "sqlite://"
    args = _parser("stylebot bench gpu").parse_args(
        [*TINY, "--broker-url", redis_url(), "--database-url", admin]
    )
    report = run(args, "stylebot bench gpu ...")
    assert report.device.startswith("CPU")
    assert report.flops_per_image > 0 and report.peak_flops > 0
    assert report.baseline.images == 2 and report.baseline.rate > 0
    assert [w.variant.name for w in report.workers] == ["batched", "overlapped-eager"]
    assert report.skipped == (("compiled", "--compile off"), ("graphs", "--compile off"))
    for w in report.workers:
        assert w.requests == 9 and len(w.latencies_s) == 9 and all(t > 0 for t in w.latencies_s)
        assert sum(w.batches) == 9 and max(w.batches) <= 4  # every job in exactly one batch
        assert max(w.batches) > 1  # a burst is batched
        assert 0 < w.idle_call_s <= w.idle_job_s
        assert w.load_s is not None and w.warmup_s is not None and w.graphs == 0
        assert w.new_graphs is None and w.vram_peak_mib is None  # not compiled; no GPU
        assert w.gap_ms is not None and w.gap_ms >= 0  # the worker logged its GPU idle time
    assert report.worker in report.workers  # the goals are judged on the fastest


def test_quantized_pictures_are_compared_with_full_precision(tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    import torch

    from bench.pipelines import build_tiny_pipeline

    args = _parser("stylebot bench gpu").parse_args(TINY)
    model = str(build_tiny_pipeline(tmp_path / "tiny"))
    diff = _difference(_styles_file(tmp_path, model, args), args, torch.device("cpu"), "int8")
    assert diff.images == 4
    assert 0 < diff.mean_abs < 10 and 20 < diff.psnr_db < 80  # changed, yet close


def test_bench_gpu_prints_the_section(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*TINY, "--requests", "4", "--broker-url", redis_url(), "--database-url",
                 postgres_url()])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("## GPU path\n")
    assert "| naive: plain pipeline, float32, one image per call |" in out
    assert "| batched: batched, not compiled |" in out
    assert "| overlapped-eager: batched + overlap, not compiled |" in out
    assert "| compiled: skipped (--compile off) |" in out
    assert "goals: " in out


def test_bench_gpu_refuses_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--requests", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["--variants", "batched,turbo"]) == 2
    assert "--variants: choose from batched, compiled" in capsys.readouterr().err


def test_goals_from_the_figures() -> None:
    slower = WorkerPath(
        variant=VARIANTS["batched"], requests=64, seconds=10.0, latencies_s=(2.0,) * 64,
        batches=(16,) * 4, idle_call_s=0.9, idle_job_s=1.0, load_s=3.0, warmup_s=4.0, graphs=0,
        new_graphs=None, vram_peak_mib=9000.0,
    )  # fmt: skip
    worker = WorkerPath(
        variant=VARIANTS["overlapped"],
        requests=64, seconds=5.0, latencies_s=(1.0,) * 64, batches=(16,) * 4,
        idle_call_s=0.42, idle_job_s=0.5, load_s=3.0, warmup_s=200.0, graphs=4,
        new_graphs=0, vram_peak_mib=9000.0,
    )  # fmt: skip
    report = GpuReport(
        when=None,  # type: ignore[arg-type]
        command="",
        device="GPU",
        software="",
        workload=None,  # type: ignore[arg-type]
        peak_flops=773e12,
        flops_per_image=32.6e12,
        baseline=Baseline(16, 16 / 1.44),
        workers=(slower, worker),
    )
    assert report.worker is worker  # the fastest
    met = {g.name: (g.measured, g.met) for g in goals(report)}
    assert met["images/s, full queue path"] == ("12.80", True)
    assert met["× naive baseline"] == ("8.89×", True)
    assert met["share of compute limit"] == ("54.0%", True)  # limit 23.7 images/s
    assert met["idle request, pipeline call"] == ("0.420 s", True)
    assert met["graphs compiled after warm-up"] == ("0", True)
