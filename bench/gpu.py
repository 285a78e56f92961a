"""`stylebot bench gpu`: images/s of the diffusers path, naive versus our worker, in one run.

1. Builds a full-size SD1.5-architecture img2img pipeline with random weights (same compute as
   real weights; no download) and saves it, as a worker would find a model on disk. `--model`
   may instead name a hub id or directory, or `tiny` (the tests' toy pipeline, for CPUs).
2. Measures the device: an fp16 (the pipeline's dtype) matmul peak, and the FLOPs of one
   image's pipeline call with torch.utils.flop_counter; peak ÷ FLOPs = the compute limit.
3. Naive baseline: the plain diffusers pipeline, one image per call, timed over --baseline.
4. Worker path, once per --variants entry (batched; compiled; compiled with CPU/GPU overlap;
   + CUDA graphs; + an fp8 or int8 UNet): a real `stylebot worker` (diffusers backend,
   dynamic batching, warm-up) on Redis and a throwaway database. One request at a time on the
   idle worker, then --requests held back and published in one burst (so they all wait);
   images/s = requests ÷ (burst published → last result stored). A quantized variant also gets
   its pictures compared with full precision (same photos, same seed).

Needs the `diffusers` extra, Redis, and PostgreSQL (or `--database-url sqlite://`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.gpu_report import (
    SECTION_TITLE,
    VARIANTS,
    Baseline,
    Difference,
    GpuReport,
    Variant,
    WorkerPath,
    Workload,
    flop,
    goals,
    render,
)
from bench.host import DEFAULT_ADMIN_URL, DEFAULT_BROKER_URL, BenchError, say
from bench.report import show

STYLE = "bench"
READY = re.compile(r"model_ready .*load_s=([\d.]+) warmup_s=([\d.]+) .*graphs=(\d+)")
BATCH = re.compile(
    r"batch_done size=(\d+) .*seconds=([\d.]+)(?: gap_ms=(-?\d+))?(?: vram_peak_mib=(\d+))?"
)
DEFAULT_VARIANTS = "batched,compiled,overlapped,graphs,fp8"
NEW_GRAPHS = re.compile(r"batch_done .*new_graphs=(\d+)")


def main(argv: Sequence[str] | None = None, prog: str = "stylebot bench gpu") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv)
    if min(args.requests, args.baseline, args.idle, args.max_batch, args.size) < 1:
        print(f"{prog}: counts and sizes must be positive", file=sys.stderr)
        return 2
    unknown = [v for v in _variant_names(args) if v not in VARIANTS]
    if unknown or not _variant_names(args):
        print(f"{prog}: --variants: choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    try:
        report = run(args, " ".join([prog, *map(shlex.quote, argv)]))
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return show(SECTION_TITLE, render(report), [g.met for g in goals(report)], args.write)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sd15", help="sd15 (random, full size), tiny, or a path")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help=f"worker variants to measure, in order (of {', '.join(VARIANTS)})",
    )
    p.add_argument("--compile", default="unet", choices=["off", "unet", "full"],
                   help="what the compiled variants compile (off: skip them)")  # fmt: skip
    p.add_argument("--size", type=int, default=512, help="photos are size × size")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--strength", type=float, default=0.6)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--batch-wait-ms", type=int, default=50)
    p.add_argument("--compile-batch-sizes", default="", help="compiled batch sizes (1,4,16)")
    p.add_argument("--requests", type=int, default=64, help="burst through the worker path")
    p.add_argument("--baseline", type=int, default=16, help="images for the naive baseline")
    p.add_argument("--idle", type=int, default=3, help="one-at-a-time requests (median)")
    p.add_argument("--ready-timeout", type=float, default=1800, help="worker warm-up limit, s")
    p.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL or sqlite://")
    p.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="Redis (FLUSHED)")
    p.add_argument("--write", action="store_true", help=f"update '{SECTION_TITLE}'")
    return p


def run(args: argparse.Namespace, command: str) -> GpuReport:
    try:
        import diffusers
        import torch
    except ImportError as exc:
        raise BenchError(f"needs the diffusers extra (pip install '.[diffusers]'): {exc}") from None
    from tasks.backends.diffusers import resolve_device, resolve_dtype

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    dtype = resolve_dtype(args.dtype, device)
    with tempfile.TemporaryDirectory(prefix="stylebot-bench-gpu-") as tmp:
        workdir = Path(tmp)
        model = _model(args.model, workdir, dtype)
        styles = _styles_file(workdir, model, args)
        workload = Workload(
            model=args.model if args.model in ("sd15", "tiny") else "model " + args.model,
            size=args.size,
            steps=args.steps,
            strength=args.strength,
            guidance=args.guidance,
            dtype=str(dtype).removeprefix("torch."),
            compile=args.compile,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
        )
        peak = matmul_peak(device, dtype)
        say(f"bench: matmul peak {flop(peak)}/s")
        flops, baseline = _naive(model, device, dtype, args)
        _free(device)  # the baseline's pipeline is gone; the worker needs room
        workers, skipped = [], []
        for name in _variant_names(args):
            variant = VARIANTS[name]
            why = _unsupported(variant, args, device)
            if why:
                say(f"bench: {name} skipped: {why}")
                skipped.append((name, why))
                continue
            diff = None
            if variant.quantize != "off":
                diff = _difference(styles, args, device, variant.quantize)
            _free(device)
            workers.append(_worker_path(args, styles, device, variant, diff))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    cuda = f", CUDA {torch.version.cuda}" if device.type == "cuda" else ""
    return GpuReport(
        when=datetime.now(UTC),
        command=command,
        device=name,
        software=f"torch {torch.__version__}, diffusers {diffusers.__version__}{cuda}",
        workload=workload,
        peak_flops=peak,
        flops_per_image=flops,
        baseline=baseline,
        workers=tuple(workers),
        skipped=tuple(skipped),
    )


def _variant_names(args: argparse.Namespace) -> list[str]:
    return [part.strip() for part in args.variants.split(",") if part.strip()]


def _unsupported(variant: Variant, args: argparse.Namespace, device: Any) -> str:
    """Why `variant` cannot run here ("" when it can)."""
    import torch

    if variant.compile and args.compile == "off":
        return "--compile off"
    if variant.compile_mode == "reduce-overhead" and device.type != "cuda":
        return "CUDA graphs need a GPU"
    if variant.quantize == "fp8" and (
        device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9)
    ):
        return "fp8 needs a GPU of compute capability 8.9 or newer"
    if variant.quantize != "off":
        try:
            import torchao  # noqa: F401
        except ImportError:
            return "torchao is not installed (the quantize extra)"
    return ""


def _free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _model(spec: str, workdir: Path, dtype: Any) -> str:
    from bench.pipelines import build_sd15_pipeline, build_tiny_pipeline

    if spec == "tiny":
        return str(build_tiny_pipeline(workdir / "tiny"))
    if spec == "sd15":
        say("bench: building a random-weight SD1.5-architecture pipeline")
        return str(build_sd15_pipeline(workdir / "sd15", dtype=str(dtype).removeprefix("torch.")))
    return spec


def _styles_file(workdir: Path, model: str, args: argparse.Namespace) -> Path:
    path = workdir / "styles.toml"
    path.write_text(
        f"[styles.{STYLE}]\n"
        'display = { en = "Bench" }\n'
        f"model = {model!r}\n"
        'prompt = "ghibli style, beautiful detailed anime illustration, soft warm light"\n'
        'negative_prompt = "photo, realistic, lowres, blurry"\n'
        f"strength = {args.strength}\nsteps = {args.steps}\nguidance = {args.guidance}\n"
        f"size = {args.size}\n",
        encoding="utf-8",
    )
    return path


def matmul_peak(device: Any, dtype: Any, reps: int = 10) -> float:
    """FLOP/s of large square matmuls in `dtype` on `device` (best of three timings)."""
    import torch

    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(3):
        _ = a @ b
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            _ = a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * reps / best


def _naive(model: str, device: Any, dtype: Any, args: argparse.Namespace) -> tuple[float, Baseline]:
    """FLOPs of one image's call, and the plain pipeline's images/s, one image per call."""
    from diffusers import AutoPipelineForImage2Image
    from torch.utils.flop_counter import FlopCounterMode

    from tasks.backends.diffusers import DTYPE_KWARG

    kwargs: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False}
    pipe = AutoPipelineForImage2Image.from_pretrained(model, **{DTYPE_KWARG: dtype}, **kwargs)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    photo = _photo(args.size)

    def once(pipe: Any = pipe) -> None:
        pipe(
            prompt="ghibli style, beautiful detailed anime illustration, soft warm light",
            negative_prompt="photo, realistic, lowres, blurry",
            image=photo,
            strength=args.strength,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
        )

    once()  # CUDA context, kernel selection
    with FlopCounterMode(display=False) as counter:
        once()
    flops = float(counter.get_total_flops())
    say(f"bench: {flop(flops)} per image; naive baseline, {args.baseline} images")
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.baseline):
        once()
    _sync(device)
    return flops, Baseline(args.baseline, time.perf_counter() - start)


def _difference(styles: Path, args: argparse.Namespace, device: Any, kind: str) -> Difference:
    """Style the same photos with the full-precision and the `kind` UNet; compare pixels."""
    import numpy as np

    from tasks.backends import PipelineOptions
    from tasks.backends.diffusers import DiffusersBackend
    from tasks.styles import load_styles

    style = load_styles(styles)[STYLE]
    photos = [_photo(args.size, seed) for seed in range(4)]
    outputs = []
    for quantize in ("off", kind):
        backend = DiffusersBackend(
            PipelineOptions(device=str(device), dtype=args.dtype, quantize=quantize)
        )
        outputs.append(
            [np.asarray(img, dtype=np.float64) for img in backend.stylize(photos, style)]
        )
        del backend
        _free(device)
    full, low = (np.stack(images) for images in outputs)
    mse = float(((full - low) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    diff = Difference(images=len(photos), mean_abs=float(np.abs(full - low).mean()), psnr_db=psnr)
    say(f"bench: {kind} UNet against full precision: {diff.mean_abs:.2f}/255, {psnr:.1f} dB")
    return diff


def _worker_path(
    args: argparse.Namespace,
    styles: Path,
    device: Any,
    variant: Variant,
    difference: Difference | None = None,
) -> WorkerPath:
    from bench.stack import live_stack

    settings: dict[str, Any] = {
        "styles_file": styles,
        "max_batch": args.max_batch,
        "batch_wait_ms": args.batch_wait_ms,
        "assumed_seconds_per_image": 0.5,
        "free_max_wait_s": 3600,
    }
    env_only = {
        "backend": "diffusers",
        "device": str(device),
        "dtype": args.dtype,
        "compile": args.compile if variant.compile else "off",
        "compile_mode": variant.compile_mode,
        "overlap": str(variant.overlap).lower(),
        "quantize": variant.quantize,
        "warmup_buckets": "512x512",  # the bench's photos are square
        "compile_batch_sizes": args.compile_batch_sizes,
        "task_soft_time_limit": 900,
        "task_time_limit": 1200,
    }
    with live_stack(args.database_url, args.broker_url, poll_s=0.005) as stack:
        sub = stack.submitter(hold=True, **settings)
        engine = sub.runtime.engine
        env = stack.env(**settings, **env_only)
        say(f"bench: {variant.name}: starting the worker (warm-up can take minutes)")
        with stack.worker(engine, env, 1, ready_timeout_s=args.ready_timeout) as worker:
            idle_jobs = []
            for _ in range(args.idle):
                sub.submit(stack.request(STYLE, args.size))
                (job,) = sub.release()
                idle_jobs.append(stack.wait_all(engine, [job], limit_s=600)[job])
            idle_batches = len(_batch_lines(worker.log_file))
            say(f"bench: {variant.name}: {args.requests} requests in one burst")
            for _ in range(args.requests):
                sub.submit(stack.request(STYLE, args.size))
            start = datetime.now(UTC)
            ids = sub.release()
            times = stack.wait_all(engine, ids, limit_s=60 + 10 * args.requests)
            log = worker.log_file.read_text(errors="replace")
    batches = _batch_lines(worker.log_file, log)
    ready = READY.search(log)
    new_graphs = NEW_GRAPHS.findall(log)
    vram = [float(v) for _, _, _, v in batches if v]
    gaps = [float(g) for _, _, g, _ in batches[idle_batches + 1 :] if g]  # within the burst
    return WorkerPath(
        variant=variant,
        requests=len(ids),
        seconds=(max(t.finished for t in times.values()) - start).total_seconds(),
        latencies_s=tuple((times[i].finished - sub.published[i][0]).total_seconds() for i in ids),
        batches=tuple(int(n) for n, _, _, _ in batches[idle_batches:]),
        idle_call_s=statistics.median(float(s) for _, s, _, _ in batches[:idle_batches]),
        idle_job_s=statistics.median((t.finished - t.started).total_seconds() for t in idle_jobs),
        load_s=float(ready.group(1)) if ready else None,
        warmup_s=float(ready.group(2)) if ready else None,
        graphs=int(ready.group(3)) if ready else None,
        new_graphs=int(new_graphs[-1]) if new_graphs else None,
        vram_peak_mib=max(vram) if vram else None,
        gap_ms=statistics.median(gaps) if gaps else None,
        difference=difference,
    )


def _batch_lines(path: Path, text: str | None = None) -> list[tuple[str, str, str, str]]:
    """(size, seconds, gap_ms, vram) of each batch_done line in the worker's log."""
    if text is None:
        text = path.read_text(errors="replace")
    return BATCH.findall(text)


def _photo(size: int, seed: int = 0) -> Any:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "CPU: " + line.partition(":")[2].strip()
    return "CPU"


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.gpu"))
