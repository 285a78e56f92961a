"""`stylebot bench queue`: the queue path's own overhead and worker-process scaling, on this CPU.

One run, against a real Redis broker and a throwaway PostgreSQL database:

1. Latency, null backend (returns its input), one worker process: requests go one after another
   through the real `Core.submit` (admission, quota, Celery publish); each is waited for before
   the next, so this is the system's overhead, not queueing. Latency = the job's `finished_at`
   (written by the worker) minus the wall time just before `submit`.
2. Throughput, sleep backend (a fixed D ms per call, no CPU), `stylebot worker --concurrency k`
   for k = 1, 2, 4, 8: k·M jobs are admitted through `Core.submit` with their Celery messages
   held back, then published in one burst, so the workers, not the submitter, set the pace.
   Images/s = jobs / (last finished_at - first started_at). The counts run twice, in rounds
   (--passes); each counts its best pass, the one least disturbed by other work.

Both phases run with STYLEBOT_MAX_BATCH=1 (and STYLEBOT_BATCH_WAIT_MS=0): one job per backend
call, so processes, not batching, are measured.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from bench.host import DEFAULT_ADMIN_URL, DEFAULT_BROKER_URL, BenchError, pg_checkpoints, say
from bench.jobs import JobTimes, ms_between, span_s
from bench.queue_render import render
from bench.queue_report import EXTRAS, SECTION_TITLE, STAGES, Latency, Report, ScalingRun, goals
from bench.report import Spread, show
from bench.stack import Stack, live_stack

# One job per backend call in both phases: processes, not batching, are measured.
ONE_JOB_PER_CALL: dict[str, Any] = {"max_batch": 1, "batch_wait_ms": 0}


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="The queue path's own overhead (null backend: request → result ready p50 and"
        " p99) and worker-process scaling (sleep backend: images/s with 1, 2, 4 and 8 processes),"
        " with Redis and PostgreSQL, on this machine. Creates and drops a throwaway database"
        " stylebot_bench_<hex>; FLUSHES the Redis database of --broker-url before and after.",
    )
    p.add_argument("--requests", type=int, default=200, metavar="N", help="latency requests")
    p.add_argument("--warmup", type=int, default=10, help="warm-up requests, not counted")
    p.add_argument(
        "--jobs", type=int, default=30, metavar="M", help="scaling jobs per worker process (M·k)"
    )
    p.add_argument(
        "--passes", type=int, default=2, help="times each process count is run (best counts)"
    )
    p.add_argument("--sleep-ms", type=int, default=200, metavar="D", help="sleep backend's time")
    p.add_argument(
        "--processes", default="1,2,4,8", help="worker process counts to run (default 1,2,4,8)"
    )
    p.add_argument(
        "--poll-ms", type=float, default=2.0, help="how often to look for a finished job"
    )
    p.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL server, used only to CREATE and DROP the throwaway database",
    )
    p.add_argument(
        "--broker-url",
        default=DEFAULT_BROKER_URL,
        help="Redis broker; this database is FLUSHED (FLUSHDB) before and after the run",
    )
    p.add_argument(
        "--write", action="store_true", help=f"replace '{SECTION_TITLE}' in BENCHMARKS.md"
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str = "stylebot bench queue") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv)
    try:
        ks = sorted({int(k) for k in args.processes.split(",") if k.strip()})
    except ValueError:
        print(
            f"{prog}: --processes: comma-separated integers, got {args.processes!r}",
            file=sys.stderr,
        )
        return 2
    if not ks or min(args.requests, args.jobs, args.sleep_ms, args.passes, *ks) < 1:
        print(
            f"{prog}: --requests, --jobs, --sleep-ms, --passes and --processes must be positive",
            file=sys.stderr,
        )
        return 2
    if args.warmup < 0:
        print(f"{prog}: --warmup must not be negative", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    previous = signal.signal(signal.SIGTERM, _terminate)  # clean up on SIGTERM as on Ctrl-C
    try:
        report = _run(args, ks, " ".join([prog, *map(shlex.quote, argv)]))
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return show(SECTION_TITLE, render(report), [g.met for g in goals(report)], args.write)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, ks: Sequence[int], command: str) -> Report:
    with live_stack(args.database_url, args.broker_url, args.poll_ms / 1000) as stack:
        machine = stack.machine
        latency = measure_latency(stack, args.requests, args.warmup)
        runs, admit_rate = measure_scaling(stack, ks, args.jobs, args.sleep_ms, args.passes)
    return Report(
        when=datetime.now(UTC),
        command=command,
        machine=machine,
        latency=latency,
        runs=tuple(runs),
        sleep_ms=args.sleep_ms,
        jobs_per_process=args.jobs,
        poll_ms=args.poll_ms,
        admit_rate=admit_rate,
    )


# --- phase 1: latency ------------------------------------------------------------------------


def measure_latency(stack: Stack, requests: int, warmup: int) -> Latency:
    """Phase 1: `warmup` + `requests` requests one after another, null backend, one process."""
    from sqlalchemy import event

    sub = stack.submitter(**ONE_JOB_PER_CALL)
    engine = sub.runtime.engine
    counts = {"stmt": 0, "commit": 0, "checkout": 0}

    def tally(key: str) -> Callable[..., None]:
        return lambda *_args, **_kw: counts.__setitem__(key, counts[key] + 1)

    event.listen(engine, "before_cursor_execute", tally("stmt"))
    event.listen(engine, "commit", tally("commit"))
    event.listen(engine.pool, "checkout", tally("checkout"))
    samples: list[dict[str, float]] = []
    say(f"bench: latency, null backend, 1 worker process: {warmup}+{requests} requests")
    env = stack.env(backend="null", sleep_backend_ms=0, **ONE_JOB_PER_CALL)
    with stack.worker(engine, env, 1) as worker, stack.job_connection() as pg:
        meter = stack.cpu_meter(engine, worker)
        for i in range(warmup + requests):
            if i == warmup:
                before = meter.sample()
                counts.update(stmt=0, commit=0, checkout=0)
                checkpoints = pg_checkpoints(engine)
            t0 = datetime.now(UTC)
            job_id = sub.submit(stack.request(sub.style))
            t1 = datetime.now(UTC)
            if job_id not in sub.published:
                raise BenchError(f"job {job_id} was admitted but not published")
            times = stack.wait_done(pg, job_id)
            if i >= warmup:
                samples.append(_stages(t0, t1, sub.published[job_id], times))
        cpu = meter.between(before, meter.sample())
        sql = (counts["stmt"], counts["commit"], counts["checkout"])
        now_checkpoints = pg_checkpoints(engine)
        if checkpoints is not None and now_checkpoints is not None:
            checkpoints = now_checkpoints - checkpoints

    def spread(key: str) -> Spread:
        return Spread.of([s[key] for s in samples])

    return Latency(
        requests=requests,
        warmup=warmup,
        total=spread("total"),
        stages=tuple((label, spread(key)) for key, label in STAGES),
        extras=tuple((label, spread(key)) for key, label in EXTRAS),
        cpu=cpu,
        submit_sql=(sql[0] / requests, sql[1] / requests, sql[2] / requests),
        over_100ms=sum(1 for s in samples if s["total"] > 100),
        checkpoints=checkpoints,
    )


def _stages(
    t0: datetime, t1: datetime, publish: tuple[datetime, datetime], job: JobTimes
) -> dict[str, float]:
    """One request's samples (ms), keyed as STAGES and EXTRAS name them, plus its total."""
    pub_start, pub_end = publish
    return {
        "pre": ms_between(t0, job.created),
        "admit": ms_between(job.created, pub_start),
        "publish": ms_between(pub_start, pub_end),
        "deliver": ms_between(pub_end, job.started),
        "work": ms_between(job.started, job.finished),
        "total": ms_between(t0, job.finished),
        "call": ms_between(t0, t1),
        "seen": ms_between(job.finished, job.seen),
        "visible": ms_between(t0, job.seen),
    }


# --- phase 2: throughput ---------------------------------------------------------------------


def measure_scaling(
    stack: Stack, ks: Sequence[int], per_process: int, sleep_ms: int, passes: int
) -> tuple[list[ScalingRun], float | None]:
    """Phase 2: per pass and process count k, k·per_process sleep-backend jobs admitted with
    their messages held, then published in a burst; the runs, and the admission rate (jobs/s)."""
    sub = stack.submitter(hold=True, **ONE_JOB_PER_CALL)
    engine = sub.runtime.engine
    env = stack.env(backend="sleep", sleep_backend_ms=sleep_ms, **ONE_JOB_PER_CALL)
    runs: list[ScalingRun] = []
    admitted, admit_s = 0, 0.0
    # Every count twice (or --passes times), in rounds: one run is at the mercy of one bad
    # moment on a shared machine, and rounds spread such moments over all counts.
    for pass_no, k in [(n, k) for n in range(1, passes + 1) for k in ks]:
        jobs = per_process * k
        say(f"bench: throughput pass {pass_no}, sleep {sleep_ms} ms, {k} processes, {jobs} jobs")
        with stack.worker(engine, env, k) as worker:
            sub.held.clear()
            start = time.perf_counter()
            for _ in range(jobs):
                sub.submit(stack.request(sub.style))
            admit_s += time.perf_counter() - start
            admitted += jobs
            meter = stack.cpu_meter(engine, worker)
            before = meter.sample()
            ids = sub.release()
            times = stack.wait_all(engine, ids, limit_s=60 + 4 * jobs * sleep_ms / 1000 / k)
            cpu = meter.between(before, meter.sample())
            runs.append(ScalingRun(k, jobs, span_s(times.values()), cpu, pass_no))
    return runs, (admitted / admit_s if admit_s else None)


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.queue"))
