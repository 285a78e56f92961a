"""The live system a benchmark measures: a throwaway PostgreSQL database, a flushed Redis
database, real `stylebot worker` subprocesses, and the runtime + `Core` that submit
`ImageRequest`s to them; then the jobs' own timestamps, read back from their rows.

`live_stack(...)` sets it all up, yields a `Stack` to drive, and tears it down. Heavy imports
stay inside functions, so `stylebot --help` does not pay for them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cpu import CpuMeter
from bench.host import BenchError, Machine, machine_info, say, tail, throwaway_database
from bench.jobs import JobTimes, Submitter, sample_png

if TYPE_CHECKING:
    import subprocess

    from sqlalchemy import Engine

    from bots.core import ImageRequest, Runtime


@dataclass(frozen=True)
class Worker:
    """A running `stylebot worker` subprocess and its log."""

    proc: subprocess.Popen[bytes]
    log_file: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)


class Stack:
    """One benchmark's database, Redis broker, scratch directory and machine, with the helpers
    that start workers, submit requests and wait for their jobs. Made by `live_stack`."""

    def __init__(
        self,
        db_url: str,
        broker_url: str,
        workdir: Path,
        poll_s: float,  # how often wait_done looks at a job's row
        broker: Any,
        machine: Machine,
    ) -> None:
        self.db_url, self.broker_url = db_url, broker_url
        self.workdir, self.poll_s = workdir, poll_s
        self.broker = broker  # a Redis client on the broker URL, for its CPU figures
        self.machine = machine
        self.run_tag = uuid.uuid4().hex[:8]
        self.serial = 0
        self._engines: list[Engine] = []

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()

    def env(self, **settings: object) -> dict[str, str]:
        """Environment for a worker on this stack: its URLs and data dir, plus `settings` as
        STYLEBOT_<NAME> variables (backend="sleep", max_batch=1, ...)."""
        return {
            "STYLEBOT_DATABASE_URL": self.db_url,
            "STYLEBOT_BROKER_URL": self.broker_url,
            "STYLEBOT_DATA_DIR": str(self.workdir / "data"),
            **{f"STYLEBOT_{name.upper()}": str(value) for name, value in settings.items()},
        }

    def runtime(self, **overrides: Any) -> Runtime:
        """A runtime on this stack: Settings from its URLs and data dir plus `overrides` (no .env
        file); its enqueue does nothing; its engine is disposed of with the stack."""
        from bots.core import build_runtime
        from storage.settings import Settings

        settings = Settings(
            data_dir=self.workdir / "data",
            database_url=self.db_url,
            broker_url=self.broker_url,
            **overrides,
            _env_file=None,  # type: ignore[call-arg]
        )
        rt = build_runtime(settings, enqueue=lambda _job_id: None)
        self._engines.append(rt.engine)
        return rt

    def submitter(self, *, hold: bool = False, **overrides: Any) -> Submitter:
        """A `Submitter` on a new runtime (see `runtime`)."""
        return Submitter(self.runtime(**overrides), hold=hold)

    def cpu_meter(self, engine: Engine, worker: Worker) -> CpuMeter:
        """A CPU meter for `worker`'s process tree, `engine`'s database, Redis and this process."""
        return CpuMeter(engine, self.broker, worker.pid, self.machine.cpus)

    def request(self, style: str, image_size: int = 64) -> ImageRequest:
        """A request for `style` from a user of its own (no in-flight cap), with a unique PNG."""
        from bots.core import ImageRequest, ReplyTarget, Sender

        self.serial += 1
        name = f"bench{self.run_tag}-{self.serial}"
        data = sample_png(self.serial, image_size)
        return ImageRequest(
            sender=Sender(f"console:{name}"),
            target=ReplyTarget("console", name),
            style=style,
            idempotency_key=f"console:{name}",
            fetch=lambda: data,
            declared_size=len(data),
        )

    @contextlib.contextmanager
    def worker(
        self, engine: Engine, env: dict[str, str], concurrency: int = 1,
        ready_timeout_s: float = 120.0, stop_timeout_s: float = 30.0,
    ) -> Iterator[Worker]:  # fmt: skip
        """`stylebot worker --concurrency k` with `env`, once all k pool processes have a
        heartbeat in `engine`'s database; stopped (and the beats deleted) afterwards."""
        from sqlalchemy import text

        from tasks.worker import spawn_worker, stop_worker

        backend = env.get("STYLEBOT_BACKEND", "default")
        log_file = self.workdir / f"worker-{backend}-{concurrency}.log"
        since = datetime.now(UTC)
        worker = Worker(spawn_worker(log_file, concurrency=concurrency, env=env), log_file)
        try:
            _await_beats(engine, worker, concurrency, since, ready_timeout_s)
            yield worker
        finally:
            stop_worker(worker.proc, timeout=stop_timeout_s)
            with engine.begin() as conn:  # a killed pool process leaves its beat behind
                conn.execute(text("DELETE FROM worker_beats"))

    @contextlib.contextmanager
    def job_connection(self) -> Iterator[Any]:
        """A psycopg autocommit connection to this stack's database, for `wait_done`."""
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.db_url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as pg:
            yield pg

    def wait_done(self, pg: Any, job_id: str, limit_s: float = 30.0) -> JobTimes:
        """Poll the job's row (every poll_s) until it is finished; BenchError unless done."""
        deadline = time.monotonic() + limit_s
        query = "SELECT status, created_at, started_at, finished_at FROM jobs WHERE id = %s"
        while True:
            row = pg.execute(query, (job_id,), prepare=True).fetchone()
            seen = datetime.now(UTC)
            if row is not None and row[3] is not None:
                status, created, started, finished = row
                if status != "done":
                    raise BenchError(f"job {job_id} ended {status}, not done")
                return JobTimes(created, started, finished, seen)
            if time.monotonic() > deadline:
                raise BenchError(f"job {job_id} not finished after {limit_s:g} s")
            time.sleep(self.poll_s)

    def wait_all(
        self, engine: Engine, ids: list[str], limit_s: float, poll_s: float = 0.05
    ) -> dict[str, JobTimes]:
        """Wait until every job has ended; each one's times. BenchError if any failed."""
        from sqlalchemy import bindparam, text

        counts = text(
            "SELECT count(*) FILTER (WHERE status IN ('done', 'failed')),"
            " count(*) FILTER (WHERE status = 'failed') FROM jobs WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        deadline = time.monotonic() + limit_s
        while True:
            with engine.connect() as conn:
                ended, failed = conn.execute(counts, {"ids": ids}).one()
            if failed:
                raise BenchError(f"{failed} of {len(ids)} jobs failed")
            if ended == len(ids):
                return _job_times(engine, ids, seen=datetime.now(UTC))
            if time.monotonic() > deadline:
                raise BenchError(f"only {ended} of {len(ids)} jobs finished in {limit_s:.0f} s")
            time.sleep(poll_s)


def _await_beats(engine: Engine, worker: Worker, k: int, since: datetime, limit_s: float) -> None:
    from sqlalchemy import text

    deadline = time.monotonic() + limit_s
    query = text("SELECT count(*) FROM worker_beats WHERE started_at >= :since")
    while True:
        with engine.connect() as conn:
            live = conn.execute(query, {"since": since}).scalar_one()
        if live >= k:
            return
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(
                f"worker (concurrency {k}) did not come up; its log:\n" + worker.tail()
            )
        time.sleep(0.05)


def _job_times(engine: Engine, ids: list[str], seen: datetime) -> dict[str, JobTimes]:
    from sqlmodel import col, select

    from storage.models import Job

    # Through the model's columns, so SQLite's text timestamps come back as datetimes too.
    query = select(Job.id, Job.created_at, Job.started_at, Job.finished_at).where(
        col(Job.id).in_(ids)
    )
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return {str(r[0]): JobTimes(r[1], r[2], r[3], seen) for r in found}


@contextlib.contextmanager
def live_stack(admin_url: str, broker_url: str, poll_s: float) -> Iterator[Stack]:
    """A `Stack` on a new, migrated throwaway database (made through `admin_url`, which is used
    for nothing else; "sqlite://" for a SQLite file instead of PostgreSQL) and the Redis
    database of `broker_url`, which is FLUSHED before and after.
    The database, scratch directory and engines are gone once the block ends."""
    import redis
    from sqlalchemy import create_engine

    from storage.migrate import upgrade

    if admin_url.startswith("sqlite"):  # no server: throwaway_database makes a file
        admin = create_engine(admin_url)
    else:
        admin = create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
    broker = redis.Redis.from_url(broker_url, socket_connect_timeout=5)
    workdir = Path(tempfile.mkdtemp(prefix="stylebot-bench-"))
    try:
        try:
            broker.ping()
        except redis.RedisError as exc:
            raise BenchError(f"Redis unreachable at {broker_url}: {exc}") from None
        machine = machine_info(admin, broker)
        broker.flushdb()
        with throwaway_database(admin) as db_url:
            say(f"bench: database {db_url.rsplit('/', 1)[-1]}, data in {workdir}")
            upgrade(db_url)
            stack = Stack(db_url, broker_url, workdir, poll_s, broker, machine)
            try:
                yield stack
            finally:
                stack.close()
    finally:
        with contextlib.suppress(redis.RedisError):
            broker.flushdb()
        broker.close()
        admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
