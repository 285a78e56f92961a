"""The "Queue path (CPU)" section of BENCHMARKS.md, rendered from a queue benchmark's Report:
the tables, and a short reading of the figures generated from them (so it can't drift)."""

from __future__ import annotations

from bench.cpu import CpuUse
from bench.queue_report import (
    SCALED_KS,
    SCALING_GOAL,
    SECTION_TITLE,
    Latency,
    Report,
    ScalingRun,
    best_runs,
    goals,
    ratios,
)
from bench.report import ms, table


def render(report: Report) -> str:
    """The "Queue path (CPU)" section of BENCHMARKS.md (markdown, title included)."""
    out = [
        SECTION_TITLE,
        "",
        f"`{report.command}` — measured {report.when:%Y-%m-%d %H:%M} UTC on"
        f" {report.machine.line()}."
        " One run: a throwaway PostgreSQL database, a real Redis broker, real `stylebot worker`"
        " processes, STYLEBOT_MAX_BATCH=1 and STYLEBOT_BATCH_WAIT_MS=0 (one job per backend"
        " call: processes, not batching, are measured).",
        "",
        *_latency_lines(report),
        "",
        *_scaling_lines(report),
        "",
        "**Goals**",
        "",
        *table(
            ["goal", "measured", "result"],
            [[g.text, g.measured, g.verdict] for g in goals(report)],
        ),
        "",
        *explain(report),
    ]
    return "\n".join(out) + "\n"


def _latency_lines(report: Report) -> list[str]:
    lat = report.latency
    out = [
        f"**Request → result ready**, null backend, one worker process: {lat.requests} requests"
        f" one after another through the real `Core.submit` ({lat.warmup} warm-up requests"
        " excluded), each finished before the next is sent. Latency = the job's `finished_at`"
        " minus the wall time just before `submit`. Stages are consecutive; each column is that"
        " stage's own percentile, so the stages' p50s need not add up to the total's.",
        "",
    ]
    rows = [[label, ms(s.p50), ms(s.p99), ms(s.max)] for label, s in lat.stages]
    rows.append(
        ["**total: request → finished_at**", f"**{ms(lat.total.p50)}**",
         f"**{ms(lat.total.p99)}**", f"**{ms(lat.total.max)}**"]
    )  # fmt: skip
    rows += [[f"*{label}*", ms(s.p50), ms(s.p99), ms(s.max)] for label, s in lat.extras]
    out += table(["stage", "p50", "p99", "max"], rows)
    if lat.cpu is not None:
        out += ["", _latency_cpu_line(lat, lat.cpu)]
    if lat.checkpoints is not None:
        line = (
            f"{lat.over_100ms} of {lat.requests} requests took over 100 ms; PostgreSQL ran"
            f" {lat.checkpoints} checkpoints (server-wide) during the requests; every stage above"
            " that commits or fsyncs can wait on the disk, which this machine shares."
        )
        out += ["", line]
    return out


def _latency_cpu_line(lat: Latency, c: CpuUse) -> str:
    n = lat.requests
    sql = ""
    if lat.submit_sql is not None:
        stmts, commits, checkouts = lat.submit_sql
        sql = (
            f" The submit side ran {stmts:.1f} SQL statements in {commits:.1f} transactions"
            f" ({checkouts:.1f} pool checkouts) per request."
        )
    return (
        f"CPU per request (includes this benchmark's polling): submit side"
        f" {1000 * c.bench_s / n:.1f} ms, worker {1000 * c.worker_s / n:.1f} ms (Celery's"
        f" main process {1000 * c.worker_main_s / n:.1f} ms of it), PostgreSQL"
        f" {1000 * c.postgres_s / n:.1f} ms, Redis {1000 * c.redis_s / n:.1f} ms"
        + _others(c)
        + "."
        + sql
    )


def _scaling_lines(report: Report) -> list[str]:
    passes = max((r.pass_no for r in report.runs), default=1)
    out = [
        f"**Throughput**, sleep backend ({report.sleep_ms} ms per call, no CPU), one `stylebot"
        f" worker --concurrency k`: {report.jobs_per_process}·k jobs admitted through"
        " `Core.submit` with their Celery messages held back, then published in one burst;"
        " images/s = jobs / (last `finished_at` - first `started_at`). The process counts run in"
        f" {passes} pass{'es' if passes > 1 else ''} (1, 2, 4, 8, then again); each row shows its"
        " best pass (the one least disturbed by other work on the machine) and the other pass"
        ' beside it, and "vs k=1" compares best with best. Ideal = k·1000/D.',
        "",
    ]
    rel = ratios(report.runs)
    rows = [_scaling_row(report, r, rel) for r in best_runs(report.runs).values()]
    return out + table(
        ["processes k", "jobs", "span", "images/s", "other pass", "vs k=1", "goal", "result",
         "ideal images/s (reached)",
         "CPU per job (worker + PostgreSQL + Redis)", "other processes' CPU load"],
        rows,
    )  # fmt: skip


def _scaling_row(report: Report, r: ScalingRun, rel: dict[int, float]) -> list[str]:
    """One process count's row: its best pass `r`, beside its other passes."""
    k = r.processes
    ideal = k * 1000 / report.sleep_ms if report.sleep_ms else float("inf")
    verdict = "—"
    if k in SCALED_KS and k in rel:
        verdict = "PASS" if rel[k] >= SCALING_GOAL * k else "MISS"
    cpu = "—"
    if r.cpu is not None:
        c, n = r.cpu, r.jobs
        cpu = (
            f"{1000 * c.system_s / n:.1f} ms ({1000 * c.worker_s / n:.1f} +"
            f" {1000 * c.postgres_s / n:.1f} + {1000 * c.redis_s / n:.1f})"
        )
    rest = [x for x in report.runs if x.processes == k and x is not r]
    return [
        str(k),
        str(r.jobs),
        f"{r.span_s:.2f} s",
        f"{r.images_per_s:.2f}",
        ", ".join(f"{x.images_per_s:.2f} ({_load(x.cpu)} load)" for x in rest) or "—",
        f"{rel[k]:.2f}×" if k in rel else "—",
        f"≥ {SCALING_GOAL * k:.2f}×" if k in SCALED_KS else "—",
        verdict,
        f"{ideal:.1f} ({r.images_per_s / ideal:.0%})",
        cpu,
        _load(r.cpu),
    ]


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
            " transactions), the image files written, and waiting for a CPU."
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
