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
import contextlib
import io
import logging
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

    from sqlalchemy import Engine

    from bots.core import ImageRequest

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"
BENCHMARKS_FILE = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION_TITLE = "## Queue path (CPU)"
P50_GOAL_MS = 25.0
P99_GOAL_MS = 100.0
SCALING_GOAL = 0.85  # k processes give at least this times k times one process's throughput
SCALED_KS = (2, 4, 8)
# The latency phase's consecutive stages (their per-request sum is the total) and views that
# overlap them; the keys name the samples the run takes.
STAGES = (
    ("pre", "request → job's `created_at` taken (precheck: user upsert, idempotency)"),
    ("admit", "→ publish starts (admission, quota, decode, input PNG + fsync, job row + reserve)"),
    ("publish", "Celery publish (`send_task` to Redis)"),
    ("deliver", "→ claim starts, `started_at` (Redis → worker → pool process → task)"),
    ("work", "→ `finished_at` (claim SQL, load input, null backend, result JPEG + fsync)"),
)
EXTRAS = (
    ("call", "the `submit()` call as the caller sees it"),
    ("seen", "finished_at → seen committed by this benchmark's poll"),
    ("visible", "request → result seen committed (poll)"),
)


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a worker died, a request refused)."""


# --- pure parts: statistics, the report, BENCHMARKS.md ---------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between closest ranks (numpy's)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Spread:
    """p50, p99 and max of a sample, in milliseconds."""

    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Spread:
        return cls(percentile(values_ms, 50), percentile(values_ms, 99), max(values_ms))


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent in a measured window, by whom; the whole machine's for contrast."""

    wall_s: float
    bench_s: float  # this process: the submit side, and its polling
    worker_s: float  # the `stylebot worker` process and its pool processes
    worker_main_s: float  # of which the main process: Celery's consumer (receive, hand out, ack)
    postgres_s: float  # the PostgreSQL backends connected to the benchmark's database
    redis_s: float
    machine_s: float | None  # busy time of all CPUs (/proc/stat); None off Linux
    cpus: int

    @property
    def system_s(self) -> float:
        """What the queue path itself used: worker, PostgreSQL, Redis (not the benchmark)."""
        return self.worker_s + self.postgres_s + self.redis_s

    @property
    def others_load(self) -> float | None:
        """The share of all CPUs that processes outside this benchmark kept busy."""
        if self.machine_s is None or self.wall_s <= 0:
            return None
        others = self.machine_s - self.system_s - self.bench_s
        return max(0.0, others) / (self.wall_s * self.cpus)


@dataclass(frozen=True)
class Latency:
    requests: int
    warmup: int
    total: Spread  # request -> finished_at
    stages: tuple[tuple[str, Spread], ...]  # consecutive; their per-request sum is the total
    extras: tuple[tuple[str, Spread], ...]  # overlapping views (the submit call, the poll)
    cpu: CpuUse | None = None  # over the measured requests
    # Per request on the submitting side: SQL statements, commits, pool checkouts (each pings).
    submit_sql: tuple[float, float, float] | None = None
    over_100ms: int = 0  # requests whose total exceeded 100 ms
    checkpoints: int | None = None  # PostgreSQL checkpoints (server-wide) during the requests


@dataclass(frozen=True)
class ScalingRun:
    processes: int
    jobs: int
    span_s: float  # first started_at -> last finished_at
    cpu: CpuUse | None = None  # from the publish burst until every job had finished
    pass_no: int = 1  # the process counts are run in passes (1, 2, 4, 8, then again)

    @property
    def images_per_s(self) -> float:
        return self.jobs / self.span_s

    @property
    def cpu_ms_per_job(self) -> float | None:
        return None if self.cpu is None else self.cpu.system_s * 1000 / self.jobs


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    python: str
    redis: str
    postgres: str

    def line(self) -> str:
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), Python {self.python}, "
            f"Redis {self.redis}, PostgreSQL {self.postgres}"
        )


@dataclass(frozen=True)
class Report:
    when: datetime
    command: str
    machine: Machine
    latency: Latency
    runs: tuple[ScalingRun, ...]
    sleep_ms: int
    jobs_per_process: int
    poll_ms: float
    admit_rate: float | None = None  # jobs/s through Core.submit while the scaling jobs queued


def best_runs(runs: Sequence[ScalingRun]) -> dict[int, ScalingRun]:
    """Per process count, the pass with the highest throughput (the least disturbed one)."""
    best: dict[int, ScalingRun] = {}
    for r in runs:
        if r.processes not in best or r.images_per_s > best[r.processes].images_per_s:
            best[r.processes] = r
    return dict(sorted(best.items()))


def ratios(runs: Sequence[ScalingRun]) -> dict[int, float]:
    """Each process count's best throughput over one process's best (empty without k=1)."""
    best = best_runs(runs)
    if 1 not in best:
        return {}
    base = best[1].images_per_s
    return {k: r.images_per_s / base for k, r in best.items()}


@dataclass(frozen=True)
class Goal:
    text: str
    measured: str
    met: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.met else "MISS"


def goals(report: Report) -> list[Goal]:
    lat = report.latency.total
    out = [
        Goal(f"overhead p50 ≤ {P50_GOAL_MS:g} ms", _ms(lat.p50), lat.p50 <= P50_GOAL_MS),
        Goal(f"overhead p99 ≤ {P99_GOAL_MS:g} ms", _ms(lat.p99), lat.p99 <= P99_GOAL_MS),
    ]
    rel = ratios(report.runs)
    for k in SCALED_KS:
        if k in rel:
            need = SCALING_GOAL * k
            out.append(Goal(f"{k} processes ≥ {need:.2f}× one", f"{rel[k]:.2f}×", rel[k] >= need))
    return out


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(report: Report) -> str:
    """The "Queue path (CPU)" section of BENCHMARKS.md (markdown, title included)."""
    lat, d = report.latency, report.sleep_ms
    passes = max((r.pass_no for r in report.runs), default=1)
    out = [
        SECTION_TITLE,
        "",
        f"`{report.command}` — measured {report.when:%Y-%m-%d %H:%M} UTC on"
        f" {report.machine.line()}."
        " One run: a throwaway PostgreSQL database, a real Redis broker, real `stylebot worker`"
        " processes, STYLEBOT_MAX_BATCH=1 and STYLEBOT_BATCH_WAIT_MS=0 (one job per backend"
        " call: processes, not batching, are measured).",
        "",
        f"**Request → result ready**, null backend, one worker process: {lat.requests} requests"
        f" one after another through the real `Core.submit` ({lat.warmup} warm-up requests"
        " excluded), each finished before the next is sent. Latency = the job's `finished_at`"
        " minus the wall time just before `submit`. Stages are consecutive; each column is that"
        " stage's own percentile, so the stages' p50s need not add up to the total's.",
        "",
    ]
    rows = [[label, _ms(s.p50), _ms(s.p99), _ms(s.max)] for label, s in lat.stages]
    rows.append(
        ["**total: request → finished_at**", f"**{_ms(lat.total.p50)}**",
         f"**{_ms(lat.total.p99)}**", f"**{_ms(lat.total.max)}**"]
    )  # fmt: skip
    rows += [[f"*{label}*", _ms(s.p50), _ms(s.p99), _ms(s.max)] for label, s in lat.extras]
    out += _table(["stage", "p50", "p99", "max"], rows)
    if lat.cpu is not None:
        n, c = lat.requests, lat.cpu
        sql = ""
        if lat.submit_sql is not None:
            stmts, commits, checkouts = lat.submit_sql
            sql = (
                f" The submit side ran {stmts:.1f} SQL statements in {commits:.1f} transactions"
                f" ({checkouts:.1f} pool checkouts, each with a pre-ping) per request."
            )
        out += [
            "",
            f"CPU per request (includes this benchmark's polling): submit side"
            f" {1000 * c.bench_s / n:.1f} ms, worker {1000 * c.worker_s / n:.1f} ms (Celery's"
            f" main process {1000 * c.worker_main_s / n:.1f} ms of it), PostgreSQL"
            f" {1000 * c.postgres_s / n:.1f} ms, Redis {1000 * c.redis_s / n:.1f} ms"
            + _others(c)
            + "."
            + sql,
        ]
    if lat.checkpoints is not None:
        line = (
            f"{lat.over_100ms} of {lat.requests} requests took over 100 ms; PostgreSQL ran"
            f" {lat.checkpoints} checkpoints (server-wide) during the requests; every stage above"
            " that commits or fsyncs can wait on the disk, which this machine shares."
        )
        out += ["", line]
    out += [
        "",
        f"**Throughput**, sleep backend ({d} ms per call, no CPU), one `stylebot worker"
        f" --concurrency k`: {report.jobs_per_process}·k jobs admitted through `Core.submit`"
        " with their Celery messages held back, then published in one burst; images/s = jobs /"
        f" (last `finished_at` - first `started_at`). The process counts run in {passes}"
        f" pass{'es' if passes > 1 else ''} (1, 2, 4, 8, then again); each row shows its best"
        " pass (the one least disturbed by other work on the machine) and the other pass"
        ' beside it, and "vs k=1" compares best with best. Ideal = k·1000/D.',
        "",
    ]
    rel, best = ratios(report.runs), best_runs(report.runs)
    rows = []
    for k, r in best.items():
        ideal = k * 1000 / d if d else float("inf")
        need = f"≥ {SCALING_GOAL * k:.2f}×" if k in SCALED_KS else "—"
        verdict = "—"
        if k in SCALED_KS and k in rel:
            verdict = "PASS" if rel[k] >= SCALING_GOAL * k else "MISS"
        cpu, others = "—", "—"
        if r.cpu is not None:
            c, n = r.cpu, r.jobs
            cpu = (
                f"{1000 * c.system_s / n:.1f} ms ({1000 * c.worker_s / n:.1f} +"
                f" {1000 * c.postgres_s / n:.1f} + {1000 * c.redis_s / n:.1f})"
            )
            others = _load(c)
        rest = [x for x in report.runs if x.processes == k and x is not r]
        rows.append(
            [
                str(k),
                str(r.jobs),
                f"{r.span_s:.2f} s",
                f"{r.images_per_s:.2f}",
                ", ".join(f"{x.images_per_s:.2f} ({_load(x.cpu)} load)" for x in rest) or "—",
                f"{rel[k]:.2f}×" if k in rel else "—",
                need,
                verdict,
                f"{ideal:.1f} ({r.images_per_s / ideal:.0%})",
                cpu,
                others,
            ]
        )
    out += _table(
        ["processes k", "jobs", "span", "images/s", "other pass", "vs k=1", "goal", "result",
         "ideal images/s (reached)",
         "CPU per job (worker + PostgreSQL + Redis)", "other processes' CPU load"],
        rows,
    )  # fmt: skip
    out += ["", "**Goals**", ""]
    out += _table(
        ["goal", "measured", "result"], [[g.text, g.measured, g.verdict] for g in goals(report)]
    )
    out += ["", *explain(report)]
    return "\n".join(out) + "\n"


def _load(c: CpuUse | None) -> str:
    return "—" if c is None or c.others_load is None else f"{100 * c.others_load:.0f} %"


def _others(c: CpuUse) -> str:
    load = c.others_load
    if load is None:
        return ""
    return f"; other processes on this machine kept {100 * load:.0f} % of its CPUs busy meanwhile"


def explain(report: Report) -> list[str]:
    """A short reading of the figures, generated from them (so it can't drift from them)."""
    lat = report.latency
    top = sorted(lat.stages, key=lambda st: st[1].p50, reverse=True)
    share = ", ".join(f"{label} {s.p50:.1f} ms" for label, s in top[:3])
    tail_label, tail = max(lat.stages, key=lambda st: st[1].p99)
    text = [
        f"Where the time goes (p50 of each stage, largest first): {share}. The tail"
        f' (p99 {lat.total.p99:.1f} ms) is mostly in "{tail_label}" (p99 {tail.p99:.1f} ms).'
        " `finished_at` is stamped just before the worker's last transaction commits; the"
        f" extra row shows when this benchmark, polling every {report.poll_ms:g} ms, saw the"
        " committed result.",
    ]
    if lat.cpu is not None:
        c = lat.cpu
        per = 1000 * (c.system_s + c.bench_s) / lat.requests
        hop = sum(s.p50 for label, s in lat.stages if "Celery" in label or "Redis" in label)
        text[-1] += (
            f" Each request cost {per:.1f} ms of CPU across the submitting process, the worker,"
            " PostgreSQL and Redis (polling included), on a path that runs one step after"
            f" another; the Celery publish and delivery together take only {hop:.1f} ms at p50,"
            " so the rest is the SQL work on both sides of the broker (statements,"
            " transactions, pool pre-pings), two image files written with fsync, and waiting"
            " for a CPU."
        )
        if c.others_load is not None and c.others_load >= 0.2:
            text[-1] += (
                f" Other processes kept {100 * c.others_load:.0f} % of the CPUs busy during this"
                " phase, so these latencies include waiting for a CPU; an idle machine would"
                " give lower ones."
            )
    rel = ratios(report.runs)
    if report.runs:
        busiest = max(best_runs(report.runs).values(), key=lambda r: r.processes)
        line = (
            f"Scaling: the sleep backend holds a process {report.sleep_ms} ms without using CPU,"
            " so k processes could give k times the throughput; what does not scale is each"
            " job's CPU work (Celery receive and ack, claim and finish SQL, PNG load, JPEG save"
            " with fsync, PostgreSQL's and Redis's own work), which all processes share on"
            f" {report.machine.cpus} CPUs."
        )
        cost = busiest.cpu_ms_per_job
        if cost:
            ceiling = report.machine.cpus * 1000 / cost
            line += (
                f" At k={busiest.processes} ({rel.get(busiest.processes, 0):.2f}× one process) each"
                f" job cost {cost:.1f} ms of CPU in the worker, PostgreSQL and Redis together"
                + (
                    f" ({1000 * busiest.cpu.worker_main_s / busiest.jobs:.1f} ms of it in the"
                    " worker's main process: Celery receiving, handing out and acking the"
                    " message),"
                    if busiest.cpu is not None
                    else ","
                )
                + f" which alone caps {report.machine.cpus} CPUs at roughly {ceiling:.0f} jobs/s"
                f" against an ideal of {busiest.processes * 1000 / report.sleep_ms:.0f}"
            )
            if busiest.cpu is not None and busiest.cpu.others_load is not None:
                line += _others(busiest.cpu)
            line += "."
        if report.admit_rate is not None:
            line += (
                f" Admission through `Core.submit` ran at {report.admit_rate:.0f} jobs/s on one"
                " thread while the jobs queued; it is kept out of the throughput span by"
                " publishing the Celery messages in a burst afterwards."
            )
        text += ["", line]
    return text


def replace_section(text: str, title: str, section: str) -> str:
    """`text` with the level-2 section `title` replaced by `section` (appended if absent).

    A section runs from its title line to the next line starting with "## " (or the end);
    everything else is kept byte for byte.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    body = section if section.endswith("\n") else section + "\n"
    if start is None:
        head = text if not text or text.endswith("\n") else text + "\n"
        return head + ("\n" if head.strip() else "") + body
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = lines[end:]
    return "".join(lines[:start]) + body + ("\n" if tail else "") + "".join(tail)


# --- the run ---------------------------------------------------------------------------------


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
    section = render(report)
    print(section)
    misses = [g for g in goals(report) if not g.met]
    print(f"goals: {len(goals(report)) - len(misses)} met, {len(misses)} missed")
    if args.write:
        old = BENCHMARKS_FILE.read_text(encoding="utf-8") if BENCHMARKS_FILE.exists() else ""
        BENCHMARKS_FILE.write_text(replace_section(old, SECTION_TITLE, section), encoding="utf-8")
        print(f"wrote '{SECTION_TITLE}' to {BENCHMARKS_FILE}")
    return 0


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, ks: Sequence[int], command: str) -> Report:
    import redis
    from sqlalchemy import create_engine

    from storage.migrate import upgrade

    admin = create_engine(
        args.database_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    broker = redis.Redis.from_url(args.broker_url, socket_connect_timeout=5)
    workdir = Path(tempfile.mkdtemp(prefix="stylebot-bench-"))
    try:
        try:
            broker.ping()
        except redis.RedisError as exc:
            raise BenchError(f"Redis unreachable at {args.broker_url}: {exc}") from None
        machine = _machine(admin, broker)
        broker.flushdb()
        with _throwaway_database(admin) as db_url:
            _say(f"bench: database {db_url.rsplit('/', 1)[-1]}, data in {workdir}")
            upgrade(db_url)
            bench = _Bench(db_url, args.broker_url, workdir, args.poll_ms / 1000)
            bench.broker, bench.cpus = broker, machine.cpus
            try:
                latency = bench.latency(args.requests, args.warmup)
                runs, admit_rate = bench.scaling(ks, args.jobs, args.sleep_ms, args.passes)
            finally:
                bench.close()
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
    finally:
        with contextlib.suppress(redis.RedisError):
            broker.flushdb()
        broker.close()
        admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _throwaway_database(admin: Engine) -> Iterator[str]:
    """A new empty database on the admin URL's server; dropped (FORCE) afterwards."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    name = f"stylebot_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:  # AUTOCOMMIT: CREATE DATABASE can't run in a transaction
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise BenchError(f"PostgreSQL at {admin.url!r}: {exc.orig}") from None
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # FORCE: a lingering worker connection must not block it
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _say(f"bench: dropped database {name}")


def _machine(admin: Engine, broker: Any) -> Machine:
    from sqlalchemy import text

    with admin.connect() as conn:
        pg = str(conn.execute(text("SHOW server_version")).scalar())
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(
        cpus=cpus or 1,
        cpu_model=model,
        python=platform.python_version(),
        redis=str(broker.info("server").get("redis_version", "?")),
        postgres=pg.split()[0],
    )


_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far), from /proc; empty off Linux."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else ():
        try:
            text = entry.read_text()
        except OSError:  # exited meanwhile
            continue
        rest = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
        # rest[0] is the state, then ppid ... utime and stime are the 14th and 15th fields.
        table[int(entry.parent.name)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) * _TICK_S)
    return table


def _descendants(table: dict[int, tuple[int, float]], root: int) -> set[int]:
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _) in table.items() if ppid == parent and pid not in found]
        found.update(kids)
        frontier += kids
    return found


def _machine_busy_s() -> float | None:
    """Busy CPU seconds of all CPUs since boot (/proc/stat); None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) * _TICK_S  # all but idle and iowait


class _CpuMeter:
    """Samples the CPU time of the worker tree, the database's backends, Redis and this process."""

    def __init__(self, engine: Engine, broker: Any, worker_pid: int, cpus: int) -> None:
        self.engine, self.broker, self.worker_pid, self.cpus = engine, broker, worker_pid, cpus

    def sample(self) -> dict[str, Any]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            pg = set(
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                ).scalars()
            )
        table = _proc_table()
        cpu = self.broker.info("cpu")
        return {
            "wall": time.monotonic(),
            "bench": time.process_time(),
            "worker": {p: table[p][1] for p in _descendants(table, self.worker_pid) if p in table},
            "main": {p: table[p][1] for p in (self.worker_pid,) if p in table},
            "postgres": {p: table[p][1] for p in pg if p in table},
            "redis": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            "machine": _machine_busy_s(),
        }

    def between(self, a: dict[str, Any], b: dict[str, Any]) -> CpuUse:
        def grew(key: str) -> float:  # processes that started meanwhile count from zero
            return sum(v - a[key].get(pid, 0.0) for pid, v in b[key].items())

        machine = None if a["machine"] is None else b["machine"] - a["machine"]
        return CpuUse(
            wall_s=b["wall"] - a["wall"],
            bench_s=b["bench"] - a["bench"],
            worker_s=grew("worker"),
            worker_main_s=grew("main"),
            postgres_s=grew("postgres"),
            redis_s=b["redis"] - a["redis"],
            machine_s=machine,
            cpus=self.cpus,
        )


def _checkpoints(engine: Engine) -> int | None:
    """Checkpoints the PostgreSQL server has run (timed + requested); None if unreadable."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    for query in (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer",  # PostgreSQL 17+
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
    ):
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(query)).scalar_one())
        except SQLAlchemyError:
            continue
    return None


def _png(seed: int, size: int = 64) -> bytes:
    """A small PNG whose bytes differ for every seed (no duplicate-photo shortcut)."""
    from PIL import Image

    img = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    img.putpixel((0, 0), (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    img.putpixel((1, 0), (seed * 7 % 256, seed * 13 % 256, seed * 31 % 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _ms_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


class _Bench:
    def __init__(self, db_url: str, broker_url: str, workdir: Path, poll_s: float) -> None:
        self.db_url, self.broker_url, self.workdir, self.poll_s = (
            db_url, broker_url, workdir, poll_s
        )  # fmt: skip
        self.broker: Any = None  # a Redis client, for its CPU figures
        self.cpus = 1
        self.run_tag = uuid.uuid4().hex[:8]
        self.serial = 0
        self._engines: list[Engine] = []

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()

    # --- set-up ----------------------------------------------------------------------------

    def _env(self, backend: str, sleep_ms: int = 0) -> dict[str, str]:
        return {
            "STYLEBOT_DATABASE_URL": self.db_url,
            "STYLEBOT_BROKER_URL": self.broker_url,
            "STYLEBOT_DATA_DIR": str(self.workdir / "data"),
            "STYLEBOT_BACKEND": backend,
            "STYLEBOT_SLEEP_BACKEND_MS": str(sleep_ms),
            "STYLEBOT_MAX_BATCH": "1",
            "STYLEBOT_BATCH_WAIT_MS": "0",
        }

    def _runtime(self, enqueue: Callable[[str], None] | None) -> Any:
        from bots.core import build_runtime
        from storage.settings import Settings

        settings = Settings(
            data_dir=self.workdir / "data",
            database_url=self.db_url,
            broker_url=self.broker_url,
            max_batch=1,
            batch_wait_ms=0,
            _env_file=None,  # type: ignore[call-arg]
        )
        rt = build_runtime(settings, enqueue=enqueue)
        self._engines.append(rt.engine)
        return rt

    def _request(self, style: str) -> ImageRequest:
        from bots.core import ImageRequest, ReplyTarget, Sender

        self.serial += 1
        name = f"bench{self.run_tag}-{self.serial}"  # one user per request: no in-flight cap
        data = _png(self.serial)
        return ImageRequest(
            sender=Sender(f"console:{name}"),
            target=ReplyTarget("console", name),
            style=style,
            idempotency_key=f"console:{name}",
            fetch=lambda: data,
            declared_size=len(data),
        )

    @contextlib.contextmanager
    def _worker(self, rt: Any, env: dict[str, str], k: int) -> Iterator[subprocess.Popen[bytes]]:
        """`stylebot worker --concurrency k`, until all k pool processes have a heartbeat."""
        from sqlalchemy import text

        from tasks.worker import spawn_worker, stop_worker

        log_file = self.workdir / f"worker-{env['STYLEBOT_BACKEND']}-{k}.log"
        since = datetime.now(UTC)
        proc = spawn_worker(log_file, concurrency=k, env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                with rt.engine.connect() as conn:
                    live = conn.execute(
                        text("SELECT count(*) FROM worker_beats WHERE started_at >= :since"),
                        {"since": since},
                    ).scalar_one()
                if live >= k:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(
                        f"worker (concurrency {k}) did not come up; its log:\n" + _tail(log_file)
                    )
                time.sleep(0.05)
            yield proc
        finally:
            stop_worker(proc, timeout=30)
            with rt.engine.begin() as conn:  # a killed pool process leaves its beat behind
                conn.execute(text("DELETE FROM worker_beats"))

    # --- phase 1: latency --------------------------------------------------------------------

    def latency(self, requests: int, warmup: int) -> Latency:
        import psycopg
        from sqlalchemy import event
        from sqlalchemy.engine import make_url

        from bots.core import Core
        from tasks.app import publisher

        marks: dict[str, tuple[datetime, datetime]] = {}
        rt = self._runtime(enqueue=lambda _job_id: None)
        publish = publisher(rt.settings)

        def timed_publish(job_id: str) -> None:
            start = datetime.now(UTC)
            publish(job_id)
            marks[job_id] = (start, datetime.now(UTC))

        rt.enqueue = timed_publish
        counts = {"stmt": 0, "commit": 0, "checkout": 0}

        def tally(key: str) -> Callable[..., None]:
            return lambda *_args, **_kw: counts.__setitem__(key, counts[key] + 1)

        event.listen(rt.engine, "before_cursor_execute", tally("stmt"))
        event.listen(rt.engine, "commit", tally("commit"))
        event.listen(rt.engine.pool, "checkout", tally("checkout"))
        core = Core(rt)
        style = next(iter(rt.styles))
        conninfo = make_url(self.db_url).set(drivername="postgresql")
        samples: list[dict[str, float]] = []
        _say(f"bench: latency, null backend, 1 worker process: {warmup}+{requests} requests")
        with (
            self._worker(rt, self._env("null"), 1) as worker,
            psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as pg,
        ):
            meter = _CpuMeter(rt.engine, self.broker, worker.pid, self.cpus)
            for i in range(warmup + requests):
                if i == warmup:
                    before = meter.sample()
                    counts.update(stmt=0, commit=0, checkout=0)
                    checkpoints = _checkpoints(rt.engine)
                req = self._request(style)
                t0 = datetime.now(UTC)
                reply = core.submit(req)
                t1 = datetime.now(UTC)
                if reply.job_id is None or reply.job_id not in marks:
                    raise BenchError(f"request refused: {reply.text!r}")
                created, started, finished, seen = self._wait_done(pg, reply.job_id)
                if i < warmup:
                    continue
                pub_start, pub_end = marks[reply.job_id]
                samples.append(
                    {
                        "pre": _ms_between(t0, created),
                        "admit": _ms_between(created, pub_start),
                        "publish": _ms_between(pub_start, pub_end),
                        "deliver": _ms_between(pub_end, started),
                        "work": _ms_between(started, finished),
                        "total": _ms_between(t0, finished),
                        "call": _ms_between(t0, t1),
                        "seen": _ms_between(finished, seen),
                        "visible": _ms_between(t0, seen),
                    }
                )
            cpu = meter.between(before, meter.sample())
            sql = (counts["stmt"], counts["commit"], counts["checkout"])
            now_checkpoints = _checkpoints(rt.engine)
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

    def _wait_done(
        self, pg: Any, job_id: str, limit_s: float = 30.0
    ) -> tuple[datetime, datetime, datetime, datetime]:
        """Poll the job row until it is finished: (created, started, finished, seen) in UTC."""
        deadline = time.monotonic() + limit_s
        query = "SELECT status, created_at, started_at, finished_at FROM jobs WHERE id = %s"
        while True:
            row = pg.execute(query, (job_id,), prepare=True).fetchone()
            seen = datetime.now(UTC)
            if row is not None and row[3] is not None:
                status, created, started, finished = row
                if status != "done":
                    raise BenchError(f"job {job_id} ended {status}, not done")
                return created, started, finished, seen
            if time.monotonic() > deadline:
                raise BenchError(f"job {job_id} not finished after {limit_s:g} s")
            time.sleep(self.poll_s)

    # --- phase 2: throughput -----------------------------------------------------------------

    def scaling(
        self, ks: Sequence[int], per_process: int, sleep_ms: int, passes: int
    ) -> tuple[list[ScalingRun], float | None]:
        from bots.core import Core
        from tasks.app import publisher

        held: list[str] = []
        rt = self._runtime(enqueue=held.append)
        publish = publisher(rt.settings)
        core = Core(rt)
        style = next(iter(rt.styles))
        runs: list[ScalingRun] = []
        admitted, admit_s = 0, 0.0
        # Every count twice (or --passes times), in rounds: one run is at the mercy of one bad
        # moment on a shared machine, and rounds spread such moments over all counts.
        for pass_no, k in [(n, k) for n in range(1, passes + 1) for k in ks]:
            jobs = per_process * k
            _say(
                f"bench: throughput pass {pass_no}, sleep {sleep_ms} ms, {k} processes, {jobs} jobs"
            )
            with self._worker(rt, self._env("sleep", sleep_ms), k) as worker:
                held.clear()
                start = time.perf_counter()
                for _ in range(jobs):
                    reply = core.submit(self._request(style))
                    if reply.job_id is None:
                        raise BenchError(f"request refused: {reply.text!r}")
                admit_s += time.perf_counter() - start
                admitted += jobs
                meter = _CpuMeter(rt.engine, self.broker, worker.pid, self.cpus)
                before = meter.sample()
                for job_id in held:
                    publish(job_id)
                span = self._wait_all(rt, list(held), limit_s=60 + 4 * jobs * sleep_ms / 1000 / k)
                cpu = meter.between(before, meter.sample())
                runs.append(ScalingRun(k, jobs, span, cpu, pass_no))
        return runs, (admitted / admit_s if admit_s else None)

    def _wait_all(self, rt: Any, ids: list[str], limit_s: float) -> float:
        """Wait until every job is finished; the span first started_at -> last finished_at."""
        from sqlalchemy import bindparam, text

        counts = text(
            "SELECT count(*) FILTER (WHERE status IN ('done', 'failed')),"
            " count(*) FILTER (WHERE status = 'failed'), min(started_at), max(finished_at)"
            " FROM jobs WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        deadline = time.monotonic() + limit_s
        while True:
            with rt.engine.connect() as conn:
                ended, failed, first, last = conn.execute(counts, {"ids": ids}).one()
            if failed:
                raise BenchError(f"{failed} of {len(ids)} jobs failed")
            if ended == len(ids):
                return float((last - first).total_seconds())
            if time.monotonic() > deadline:
                raise BenchError(f"only {ended} of {len(ids)} jobs finished in {limit_s:.0f} s")
            time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.queue"))
