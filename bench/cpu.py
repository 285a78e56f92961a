"""Who used the CPU during a measured window: a worker's process tree, the database's PostgreSQL
backends, Redis, this process, and the whole machine for contrast (Linux /proc; figures that
need /proc are empty elsewhere)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


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


def parse_proc_stat(text: str) -> tuple[int, float]:
    """(parent pid, CPU seconds used) from the text of one /proc/<pid>/stat."""
    rest = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    # rest[0] is the state, then ppid ... utime and stime are the 14th and 15th fields.
    return int(rest[1]), (int(rest[11]) + int(rest[12])) * TICK_S


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far), from /proc; empty off Linux."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else ():
        try:
            text = entry.read_text()
        except OSError:  # exited meanwhile
            continue
        table[int(entry.parent.name)] = parse_proc_stat(text)
    return table


def descendants(table: dict[int, tuple[int, float]], root: int) -> set[int]:
    """`root` and every process below it in `table` (pid -> (parent pid, ...))."""
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _) in table.items() if ppid == parent and pid not in found]
        found.update(kids)
        frontier += kids
    return found


def machine_busy_s() -> float | None:
    """Busy CPU seconds of all CPUs since boot (/proc/stat); None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) * TICK_S  # all but idle and iowait


class CpuMeter:
    """Samples the CPU time of the worker tree, the database's backends, Redis and this process.

    `between(sample(), sample())` is the CpuUse of the window between the two samples.
    """

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
        table = proc_table()
        cpu = self.broker.info("cpu")
        return {
            "wall": time.monotonic(),
            "bench": time.process_time(),
            "worker": {p: table[p][1] for p in descendants(table, self.worker_pid) if p in table},
            "main": {p: table[p][1] for p in (self.worker_pid,) if p in table},
            "postgres": {p: table[p][1] for p in pg if p in table},
            "redis": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            "machine": machine_busy_s(),
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
